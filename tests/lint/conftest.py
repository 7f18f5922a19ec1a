"""The lint tests read the tree (sources, headers, man pages, documents,
the build) and run echod only to check a policy (-t); they start no
service and touch no network. tests/run.py runs them before the
integration tests, as their own pytest pass.

Their few helpers are the integration tests' own, loaded from
tests/integration/conftest.py under another module name, so there is one
copy of each."""

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"
_SPEC = importlib.util.spec_from_file_location("integration_conftest", _PATH)
_integration = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_integration)

ROOT = _integration.ROOT
EXIT_CONFIG = _integration.EXIT_CONFIG
policy_keywords = _integration.policy_keywords
run_echod = _integration.run_echod
