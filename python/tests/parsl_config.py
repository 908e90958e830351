"""A Parsl test configuration with StrandExecutor, for Parsl's own test suite:
pytest --pyargs parsl.tests.test_python_apps --config python/tests/parsl_config.py"""

from parsl.config import Config

from strand.parsl import StrandExecutor


def fresh_config():
    return Config(executors=[StrandExecutor(workers=2)])
