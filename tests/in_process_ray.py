"""Ray's calls, answered in this process: the stand-in the protocol tests of tests/test_data_parallel.py
(RSO's shards) and tests/test_shared_seeds.py (NES/SPSA workers) run the drivers against, and
tests/test_benchmark_ray.py the process runner (minirso/sweep/runner.py: remote functions, run when
called, ``wait`` and ``cancel``).

Every argument and reply goes through pickle (no actor shares an array with the driver); an actor's
exception is raised as a RayError by ``get``, as Ray raises it, not when the call is sent.
"""
import pickle
from types import SimpleNamespace


class Failed:
    """What a failed actor call returns; ``get`` raises it as a RayError."""

    def __init__(self, err):
        self.err = err


class Ref:
    """A remote function's result (hashable, as Ray's ObjectRef); ``get`` unwraps it."""

    def __init__(self, value):
        self.value = value


class InProcessRay:
    """``ray.remote``, ``put``, ``get``, ``kill`` and ``cluster_resources`` (``cpus`` CPUs) for actors that live in this process (``actors``)."""

    exceptions = SimpleNamespace(RayError=type("RayError", (Exception,), {}),
                                 GetTimeoutError=type("GetTimeoutError", (Exception,), {}))

    def __init__(self, cpus=8):
        self.actors, self.cpus = [], cpus

    def cluster_resources(self):
        return {"CPU": float(self.cpus)}

    @staticmethod
    def copy(x):
        return pickle.loads(pickle.dumps(x))

    def remote(self, function=None, **options):
        ray = self
        if function is not None:  # a remote function: run at .remote(); a Ref to its result (or Failed)
            def call(*args):
                try:
                    return Ref(ray.copy(function(*ray.copy(args))))
                except Exception as err:
                    return Failed(err)
            return SimpleNamespace(remote=call, options=lambda **_: SimpleNamespace(remote=call))

        class Handle:
            def __init__(self, obj):
                self.obj = obj

            def __getattr__(self, name):
                def call(*args):
                    if name == "__ray_ready__":
                        return True
                    try:
                        return ray.copy(getattr(self.obj, name)(*ray.copy(args)))
                    except Exception as err:
                        return Failed(err)
                return SimpleNamespace(remote=call)

        def wrap(cls):
            def start(*args):
                obj = cls(*ray.copy(args))
                ray.actors.append(obj)
                return Handle(obj)
            return SimpleNamespace(remote=start)
        return wrap

    def put(self, x):
        return self.copy(x)

    def get(self, refs, timeout=None):
        for r in refs if isinstance(refs, list) else [refs]:
            if isinstance(r, Failed):
                raise self.exceptions.RayError(f"{type(r.err).__name__}: {r.err}")
        if isinstance(refs, Ref):
            return refs.value
        return [r.value if isinstance(r, Ref) else r for r in refs] if isinstance(refs, list) else refs

    def kill(self, actor):
        pass

    def wait(self, refs, num_returns=1, timeout=None):
        return list(refs[:num_returns]), list(refs[num_returns:])

    def cancel(self, ref):
        pass
