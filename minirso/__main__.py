import sys

from .cli import run
from .train import main

sys.exit(run(main))
