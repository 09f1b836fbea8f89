"""The checks every exercise file runs on its tutorial's graders (minirso.grading): a right answer
passes, a stub is "not attempted", each plausible wrong answer is rejected with its message.

A test file binds them to its own answers::

    test_right_answer_passes, test_stub_is_not_attempted, test_wrong_answer_is_rejected = \\
        grader_checks(RIGHT, WRONG)

``RIGHT``: {grader name: a right answer}; ``WRONG``: [(grader name, wrong answer, regex its error must match)].
"""
import pytest

from minirso.grading import grade


def grader_checks(right, wrong):
    """The three parametrised tests for ``right`` and ``wrong`` (see the module docstring)."""
    names = list(right)

    @pytest.mark.parametrize("name", names)
    def test_right_answer_passes(name, capsys):
        assert grade(name, right[name]) is True
        assert "passed" in capsys.readouterr().out

    @pytest.mark.parametrize("name", names)
    def test_stub_is_not_attempted(name, capsys):
        def stub(*args, **kwargs):
            raise NotImplementedError
        assert grade(name, stub) is False
        assert "not attempted" in capsys.readouterr().out

    @pytest.mark.parametrize("name, answer, message", wrong, ids=[w[1].__name__ for w in wrong])
    def test_wrong_answer_is_rejected(name, answer, message):
        with pytest.raises(AssertionError, match=message):
            grade(name, answer)

    return test_right_answer_passes, test_stub_is_not_attempted, test_wrong_answer_is_rejected
