"""Named checks, run one after another: a failed or crashing check is reported and the
run goes on, so one run shows every failure. Shared by the output tests."""

import traceback


class CheckFailed(Exception):
    pass


def require(condition, message):
    if not condition:
        raise CheckFailed(message)


def run_checks(checks):
    """Runs every (name, check) pair, printing `ok` or `FAIL` and why; returns (passed,
    failed)."""
    passed = failed = 0
    for name, check in checks:
        try:
            check()
        except CheckFailed as e:
            failed += 1
            print(f"FAIL {name}: {e}")
        except Exception:  # a crash in a check is that check's failure, not the run's
            failed += 1
            print(f"FAIL {name}: {traceback.format_exc().strip()}")
        else:
            passed += 1
            print(f"ok   {name}")
    return passed, failed
