"""apflab's pytest plugin: target selection, the guest fixtures, verdicts, results on disk.

* ``--target NAME`` picks a target of the labgrid environment (lab.yaml at the rootdir
  unless ``--lg-env``/``LG_ENV`` name another); an unknown or empty name, a malformed
  file, or a mistake in the chosen target's configuration (checked once, here, by
  apflab.lab.configcheck) is a one-line usage error before any test runs.
* Fixtures: ``guest`` (reset before each test), ``expect`` (bound to the target's
  profile), ``target_info``, ``record_metric``.
* Each test's verdict (PASS, FAIL, SKIP, XFAIL, XPASS, KFAIL) and its spec section go
  into the report's user properties, into ``--apflab-junit`` and ``--apflab-metrics``
  (rewritten after every test), and into the closing ``SUMMARY:`` line.
* A target's ``requires`` (capabilities it must have) and ``strict_deviations`` (every
  deviation a case names must show) turn a gap of the implementation into FAILs: a
  missing required capability fails every case, a named deviation that never showed
  fails the session's ``apflab::deviations_shown`` record.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from apflab.capabilities import missing
from apflab.guest import Guest, TargetError, TargetInfo, Unsupported
from apflab.results import CaseRecord, Metric, ResultLog, provenance, summary_line
from apflab.verdict import KFAIL_PREFIX, CaseStopped, Expect, Verdict

LOG_KEY = pytest.StashKey[ResultLog]()
INFO_KEY = pytest.StashKey[TargetInfo]()
#: The profile's deviations the session's cases named, and those that showed (KFAIL checks).
NAMED_KEY = pytest.StashKey[set[str]]()
SHOWN_KEY = pytest.StashKey[set[str]]()
DEFAULT_TARGET = "model"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("apflab")
    group.addoption("--target", default=None, help=f"target from lab.yaml to run on (default: {DEFAULT_TARGET})")
    group.addoption("--apflab-junit", default=None, metavar="PATH", help="JUnit XML, rewritten after every test")
    group.addoption("--apflab-metrics", default=None, metavar="PATH", help="metrics JSON (name, value, unit)")
    group.addoption(
        "--fresh-target-each",
        action="store_true",
        help="restart the target for every case, as kvm-unit-tests boots one VM per test",
    )


def _lab_file(config: pytest.Config) -> Path | None:
    explicit = config.getoption("lg_env", default=None) or os.environ.get("LG_ENV")
    if explicit:
        return Path(explicit)
    default = Path(config.rootpath) / "lab.yaml"
    return default if default.exists() else None


def _load_environment(path: Path):
    from labgrid import Environment

    if not path.exists():
        raise pytest.UsageError(f"labgrid environment {path} does not exist (give --lg-env or create lab.yaml)")
    try:
        return Environment(config_file=str(path))
    except Exception as exc:  # labgrid raises several types for a bad file
        text = " ".join(str(exc).split())[:300]
        raise pytest.UsageError(f"{path}: not a valid labgrid environment: {type(exc).__name__}: {text}") from None


def _checked_names(env) -> list[str]:
    from apflab.lab.configcheck import ConfigError, check_names

    try:
        return check_names(env)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _check_target(env, target: str) -> None:
    """The chosen target's configuration, once, before any test (apflab.lab.configcheck)."""
    from apflab.lab.configcheck import ConfigError, check_target

    try:
        check_target(env, target)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spec(section, claim): the spec section a testcase checks")
    config.addinivalue_line(
        "markers", "fresh_target: the case may wedge the target or break it past RESET: the next case gets a fresh one"
    )
    lab = _lab_file(config)
    target = config.getoption("target") or DEFAULT_TARGET
    if lab is not None:
        env = _load_environment(lab)
        known = sorted(_checked_names(env))
        if config.getoption("target") == "":
            raise pytest.UsageError(f"--target '' is empty; give a target of {lab}: {', '.join(known)}")
        if config.getoption("target") and target not in known:
            raise pytest.UsageError(f"unknown target {target!r}; targets in {lab}: {', '.join(known)}")
        if target in known:
            _check_target(env, target)
        if getattr(config.option, "lg_env", "absent") is None:
            config.option.lg_env = str(lab)  # labgrid's plugin builds its env from it
    elif config.getoption("target") is not None:
        raise pytest.UsageError(f"--target {target} given but there is no lab.yaml (give --lg-env)")
    junit = config.getoption("apflab_junit")
    metrics = config.getoption("apflab_metrics")
    props = provenance(Path(config.rootpath), target, "")
    config.stash[LOG_KEY] = ResultLog(
        f"apflab.{target}", props, Path(junit) if junit else None, Path(metrics) if metrics else None
    )
    config.pluginmanager.register(ResultsRecorder(config), "apflab-results")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    testcases = Path(config.rootpath) / "testcases"
    missing = [i.nodeid for i in items if testcases in Path(i.path).parents and i.get_closest_marker("spec") is None]
    if missing:
        raise pytest.UsageError(f"testcases without @spec(section, claim): {', '.join(missing[:5])}")


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def apflab_guest(request: pytest.FixtureRequest) -> Iterator[Guest]:
    """The selected target's Guest, set up once per session."""
    from labgrid.pytestplugin.hooks import LABGRID_ENV_KEY

    from apflab.lab import GuestProtocol

    config = request.config
    env = config.stash.get(LABGRID_ENV_KEY, None)
    if env is None:
        pytest.skip("no labgrid environment (lab.yaml) to take a target from")
    name = config.getoption("target") or DEFAULT_TARGET
    target = env.get_target(name)
    if target is None:
        pytest.fail(f"target {name!r} is not in the environment", pytrace=False)
    try:
        driver = target.get_driver(GuestProtocol)
        guest = driver.guest()  # booted, HELLO, probed, described
    except (TargetError, OSError) as exc:
        pytest.fail(f"target {name} did not come up: {exc}", pytrace=False)
    short = missing(guest.info.requires, guest.info.capabilities, name)
    if short is not None:
        env.cleanup()
        pytest.fail(str(short), pytrace=False)
    config.stash[INFO_KEY] = guest.info
    log = config.stash[LOG_KEY]
    log.suite_properties["guest_driver"] = type(driver).__name__  # ModelDriver: the report's model
    log.suite_properties["profile"] = guest.info.profile.name
    log.suite_properties["conduit"] = guest.info.conduit
    log.suite_properties["capabilities"] = ",".join(sorted(guest.info.capabilities))
    yield guest
    for metric in driver.session_figures().metrics(name):
        log.add_metric(metric)
    env.cleanup()


@pytest.fixture
def guest(apflab_guest: Guest, request: pytest.FixtureRequest) -> Iterator[Guest]:
    """The target, reset to its power-on SDEI state, calls on PE 0.

    A case marked ``fresh_target`` (known or suspected to wedge a target, or to break it in a
    way RESET cannot undo, as TF-A losing event 0) leaves the next case a freshly started
    target; it needs none itself, since every case before it left one RESET restores (or a
    wedge that restarts it). ``--fresh-target-each`` starts every case in a fresh target.
    """
    if request.config.getoption("fresh_target_each"):
        apflab_guest.restart()
    else:
        apflab_guest.reset()  # a reset or a restarted target makes its calls on PE 0
    yield apflab_guest
    if request.node.get_closest_marker("fresh_target") is not None or request.config.getoption("fresh_target_each"):
        apflab_guest.discard()


@pytest.fixture
def target_info(apflab_guest: Guest) -> TargetInfo:
    return apflab_guest.info


@pytest.fixture
def expect(apflab_guest: Guest) -> Expect:
    return Expect(apflab_guest.info.profile, strict=apflab_guest.info.strict_deviations)


@pytest.fixture
def record_metric(request: pytest.FixtureRequest) -> Callable[[str, float, str], None]:
    """Record a measurement (name, value, unit) for metrics.json and the test's properties."""
    log = request.config.stash[LOG_KEY]
    target = log.suite_properties.get("target", "")

    def record(name: str, value: float, unit: str) -> None:
        log.add_metric(Metric(name, float(value), unit, request.node.nodeid, target))
        request.node.user_properties.append((f"metric:{name}", f"{value} {unit}"))

    return record


# --------------------------------------------------------------- skip/verdict


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    except Unsupported as exc:
        pytest.skip(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    checks = getattr(item, "funcargs", {}).get("expect")
    try:
        result = yield
    except Unsupported as exc:
        pytest.skip(str(exc))
    except CaseStopped:
        result = None  # a predicted wedge: the checks so far decide
    finally:
        if isinstance(checks, Expect):
            item.user_properties.extend(checks.properties())
            item.config.stash.setdefault(NAMED_KEY, set()).update(checks.named)
            item.config.stash.setdefault(SHOWN_KEY, set()).update(checks.shown())
    if isinstance(checks, Expect):
        _end_with_checks(checks)
    return result


def _end_with_checks(checks: Expect) -> None:
    """End the case with the worst verdict of its checks (kvm-unit-tests goes on after each)."""
    verdict, reason = checks.outcome()
    if verdict is Verdict.FAIL:
        pytest.fail(reason, pytrace=False)
    if verdict is Verdict.KFAIL:
        pytest.xfail(KFAIL_PREFIX + reason)


def verdict_of(report: pytest.TestReport) -> Verdict:
    wasxfail = getattr(report, "wasxfail", None)
    if wasxfail is not None:
        if report.skipped:
            return Verdict.KFAIL if str(wasxfail).startswith(KFAIL_PREFIX) else Verdict.XFAIL
        return Verdict.XPASS if report.passed else Verdict.FAIL
    if report.failed:
        return Verdict.FAIL
    if report.skipped:
        return Verdict.SKIP
    return Verdict.PASS


def _reason(report: pytest.TestReport, verdict: Verdict) -> str:
    if verdict in (Verdict.KFAIL, Verdict.XFAIL):
        return str(getattr(report, "wasxfail", "")).removeprefix(KFAIL_PREFIX)
    if verdict is Verdict.SKIP and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if verdict is Verdict.FAIL:
        crash = getattr(report.longrepr, "reprcrash", None)
        return crash.message if crash is not None else str(report.longrepr).splitlines()[-1:][0]
    return ""


class ResultsRecorder:
    """Turns each finished test into a CaseRecord on disk (registered per session)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.log = config.stash[LOG_KEY]
        self.pending: dict[str, tuple[pytest.TestReport, Verdict, str]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
        report: pytest.TestReport = yield
        if report.when == "teardown" or (report.when == "setup" and report.passed):
            return report
        verdict = verdict_of(report)
        marker = item.get_closest_marker("spec")
        props = {
            "spec_section": marker.kwargs.get("section", "") if marker else "",
            "claim": marker.kwargs.get("claim", "") if marker else "",
            "target": self.log.suite_properties.get("target", ""),
            "profile": self.log.suite_properties.get("profile", ""),
            "verdict": verdict.value,
        }
        reason = _reason(report, verdict)
        if reason:
            props["reason"] = reason
        if report.when == "setup":
            props["phase"] = "setup"
        have = dict(item.user_properties)
        item.user_properties.extend((k, v) for k, v in props.items() if k not in have)
        self.pending[item.nodeid] = (report, verdict, reason)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":
            return
        pending = self.pending.pop(report.nodeid, None)
        if pending is None:
            return
        first, verdict, reason = pending
        if report.failed and verdict is not Verdict.FAIL:
            verdict, reason = Verdict.FAIL, f"teardown failed: {report.longrepr}"
        props = dict(report.user_properties)
        props["verdict"] = verdict.value
        duration = first.duration + (report.duration or 0.0)
        props["duration_s"] = f"{duration:.6f}"
        module, _, name = report.nodeid.rpartition("::")
        classname = module.replace("/", ".").removesuffix(".py")
        details = str(first.longrepr) if verdict is Verdict.FAIL and first.longrepr else ""
        target = self.log.suite_properties.get("target", "")
        self.log.add(
            CaseRecord(report.nodeid, classname, name, duration, verdict, reason, details, props),
            [Metric("duration", duration, "s", report.nodeid, target)],
        )

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.partial = True

    def _whole_suites(self, session: pytest.Session) -> bool:
        """Whether the session ran every testcase: a deviation may show in one case only."""
        if getattr(self, "partial", False) or session.shouldstop or session.shouldfail:
            return False
        testcases = Path(self.config.rootpath) / "testcases"
        whole = [Path(self.config.invocation_params.dir, a) for a in self.config.args if "::" not in a]
        return any(p.resolve() in (testcases, *testcases.parents) for p in whole)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """On a target that must show its profile's deviations, one named that never showed in a
        run of every testcase is a FAIL (a subset may leave out the one case that shows it)."""
        info = self.config.stash.get(INFO_KEY, None)
        if info is None or not info.strict_deviations or not self._whole_suites(session):
            return
        unseen = sorted(self.config.stash.get(NAMED_KEY, set()) - self.config.stash.get(SHOWN_KEY, set()))
        if not unseen:
            return
        reason = (
            f"profile {info.profile.name}: deviation(s) {', '.join(unseen)} named by the cases that ran never "
            f"showed: target {info.name} must implement them (strict_deviations)"
        )
        props = {"target": info.name, "profile": info.profile.name, "verdict": Verdict.FAIL.value, "reason": reason}
        nodeid = "apflab::deviations_shown"
        self.log.add(CaseRecord(nodeid, "apflab", "deviations_shown", 0.0, Verdict.FAIL, reason, "", props), [])
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        writer = session.config.get_terminal_writer()
        writer.line()
        writer.line(f"FAIL: {reason}", red=True)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.log.suite_properties["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    def pytest_terminal_summary(self, terminalreporter, exitstatus: int) -> None:
        if self.log.cases:
            self.log.flush()
            terminalreporter.write_line(summary_line(self.log.counts()))
