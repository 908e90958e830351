"""A Parsl test configuration with StrandExecutor whose blocks Parsl's strategy scales through
a LocalProvider, for Parsl's own test suite:
pytest --pyargs parsl.tests.test_python_apps --config python/tests/parsl_blocks_config.py"""

from parsl.config import Config
from parsl.providers import LocalProvider

from strand.parsl import StrandExecutor


def fresh_config():
    return Config(
        executors=[StrandExecutor(provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1), ranks_per_node=3)],
        strategy_period=0.5,
    )
