"""Package builds: wheel + sdist, .deb, RPM, and the Homebrew / Arch / launchd files.

Marked slow (about 30 s together on 2 cores, plus dependency downloads); CI runs them with
``pytest -m slow``; ``scripts/test`` installs the Debian build tools. A tool
that is missing skips its test with the package to install.

Every build starts from the sdist, as distributions do, so these also check
that the sdist carries everything the packaging needs.
"""

from __future__ import annotations

import contextlib
import json
import os
import plistlib
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
VERSION = "0.1.0"
#: Debian's tools, not a virtualenv's or pyenv's python first on PATH.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _run(
    argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    output = f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    assert r.returncode == 0, f"{' '.join(argv)} failed ({r.returncode}):\n{output}"
    return r


def _need(*tools: str, apt: str) -> None:
    missing = [t for t in tools if shutil.which(t, path=SYSTEM_PATH) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install {apt})")


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tdpkg", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def dist(workdir: Path) -> Path:
    """``python -m build``: the sdist, and the wheel built from it."""
    out = workdir / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], timeout=300)
    assert (out / f"tokend-{VERSION}.tar.gz").exists()
    assert (out / f"tokend-{VERSION}-py3-none-any.whl").exists()
    return out


@pytest.fixture(scope="module")
def source_tree(workdir: Path, dist: Path) -> Path:
    """The unpacked sdist: what every distribution package builds from."""
    with tarfile.open(dist / f"tokend-{VERSION}.tar.gz") as tar:
        tar.extractall(workdir / "src", filter="data")
    return workdir / "src" / f"tokend-{VERSION}"


# -- wheel and sdist ------------------------------------------------------------------


def test_sdist_carries_what_the_packages_build_from(dist: Path) -> None:
    with tarfile.open(dist / f"tokend-{VERSION}.tar.gz") as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in (
        "README.md",
        "helpers/tokend-print",
        "systemd/tokend.socket",
        "systemd/tokend.service",
        "packaging/generate.py",
        "packaging/man/tokend.1",
        "packaging/debian/control",
        "packaging/debian/rules",
        "packaging/rpm/tokend.spec",
        "packaging/homebrew/tokend.rb",
        "packaging/arch/PKGBUILD",
        "packaging/launchd/dev.tokend.plist",
        "tokend/service/data/tokend.service",
        "tests/conftest.py",
    ):
        assert needed in names, needed


def test_wheel_carries_the_helper_and_the_units(dist: Path) -> None:
    with zipfile.ZipFile(dist / f"tokend-{VERSION}-py3-none-any.whl") as whl:
        names = set(whl.namelist())
        entry_points = whl.read(f"tokend-{VERSION}.dist-info/entry_points.txt").decode()
    assert f"tokend-{VERSION}.data/scripts/tokend-print" in names
    assert "tokend = tokend.cli:main" in entry_points
    for data in ("tokend.service", "tokend.socket", "dev.tokend.plist"):
        assert f"tokend/service/data/{data}" in names


def _stop_daemons(env: dict[str, str], tokend: str) -> None:
    """Stop the daemon an autostart left, by its pid."""
    r = subprocess.run([tokend, "status", "--json"], env=env, capture_output=True, text=True, timeout=30)
    if r.returncode == 0:
        pid = json.loads(r.stdout)["pid"]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)


def test_fresh_venv_install_then_tokend_print_demo(workdir: Path, dist: Path) -> None:
    venv = workdir / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    wheel = dist / f"tokend-{VERSION}-py3-none-any.whl"
    _run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(wheel)], timeout=300)
    home = Path(tempfile.mkdtemp(prefix="tdh", dir="/tmp"))
    try:
        (home / "run").mkdir(mode=0o700)
        env = {
            "PATH": f"{venv / 'bin'}:{SYSTEM_PATH}",
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(home / "run"),
            "XDG_CONFIG_HOME": str(home / "config"),  # no config: the built-in demo profile
            "LC_ALL": "C.UTF-8",
        }
        tokend = str(venv / "bin/tokend")
        try:
            first = _run([str(venv / "bin/tokend-print"), "demo"], env=env, timeout=60)
            assert first.stdout.startswith("demo-") and first.stdout.endswith("\n")
            again = _run([str(venv / "bin/tokend-print"), "demo"], env=env, timeout=60)
            assert again.stdout == first.stdout, "served by the daemon the first call started"

            # pipx / uv tool: the helper runs through a symlink in a directory that
            # may hold another python3; it must still use its own installation.
            links = home / "bin"
            links.mkdir()
            (links / "python3").write_text("#!/bin/sh\necho wrong python >&2; exit 9\n")
            (links / "python3").chmod(0o755)
            (links / "tokend-print").symlink_to(venv / "bin/tokend-print")
            linked = _run([str(links / "tokend-print"), "demo"], env=env, timeout=60)
            assert linked.stdout == first.stdout

            plan = _run([tokend, "service", "install", "--dry-run", "--manager", "systemd"], env=env)
            assert f"ExecStart={tokend} serve" in plan.stdout
        finally:
            _stop_daemons(env, tokend)
    finally:
        shutil.rmtree(home, ignore_errors=True)


# -- Debian -----------------------------------------------------------------------------

DEB_TOOLS = "dpkg-dev debhelper dh-python pybuild-plugin-pyproject python3-all"


def test_deb_builds_and_ships_units_helpers_man_and_completions(workdir: Path, source_tree: Path) -> None:
    _need("dpkg-buildpackage", "dh", "pybuild", apt=DEB_TOOLS)
    tree = workdir / "deb" / f"tokend-{VERSION}"
    shutil.copytree(source_tree, tree)
    shutil.copytree(tree / "packaging" / "debian", tree / "debian")
    env = {"PATH": SYSTEM_PATH, "HOME": str(workdir), "LC_ALL": "C.UTF-8", "DEB_BUILD_OPTIONS": "nocheck"}
    checkdeps = subprocess.run(["dpkg-checkbuilddeps"], cwd=tree, env=env, capture_output=True, text=True)
    if checkdeps.returncode != 0:
        pytest.skip(f"Debian build dependencies missing: {checkdeps.stderr.strip()}")
    _run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, env=env, timeout=300)
    deb = workdir / "deb" / f"tokend_{VERSION}-1_all.deb"
    listing = _run(["dpkg-deb", "-c", str(deb)], env=env).stdout
    files = {line.split()[5].removeprefix(".") for line in listing.splitlines()}
    for path in (
        "/usr/lib/systemd/user/tokend.socket",
        "/usr/lib/systemd/user/tokend.service",
        "/usr/bin/tokend",
        "/usr/bin/tokend-print",
        "/usr/lib/python3/dist-packages/tokend/daemon/run.py",
        "/usr/share/man/man1/tokend.1.gz",
        "/usr/share/bash-completion/completions/tokend",
        "/usr/share/zsh/vendor-completions/_tokend",
        "/usr/share/fish/vendor_completions.d/tokend.fish",
    ):
        assert path in files, f"{path} not in the .deb:\n{listing}"
    fields = _run(["dpkg-deb", "-f", str(deb), "Depends"], env=env).stdout
    assert "python3-click" in fields and "python3-keyring" in fields

    extracted = workdir / "deb" / "x"
    _run(["dpkg-deb", "-x", str(deb), str(extracted)], env=env)
    unit = (extracted / "usr/lib/systemd/user/tokend.service").read_text()
    assert "ExecStart=/usr/bin/tokend serve" in unit
    # tokend-print at /usr/bin runs $here/python3 = /usr/bin/python3, and finds
    # the package in /usr/lib/python3/dist-packages.
    assert (extracted / "usr/bin/tokend-print").read_text().startswith("#!/bin/sh")


def test_deb_installed_tree_serves_demo(workdir: Path) -> None:
    """The .deb's files laid over /usr in a private mount namespace: tokend-print demo works."""
    extracted = workdir / "deb" / "x"
    if not extracted.exists():
        pytest.skip("the .deb was not built")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to overlay /usr privately")
    home = Path(tempfile.mkdtemp(prefix="tdh", dir="/tmp"))
    os.chmod(home, 0o700)
    script = f"""
        mount -t overlay overlay -o lowerdir={extracted}/usr:/usr /usr || exit 77
        export PATH={SYSTEM_PATH} HOME={home} XDG_RUNTIME_DIR={home} XDG_CONFIG_HOME={home}/c
        first=$(/usr/bin/tokend-print demo); second=$(/usr/bin/tokend-print demo)
        /usr/bin/tokend stop || exit 1  # the daemon lives in this namespace: always stop it
        printf '%s\n%s\n' "$first" "$second"
    """
    try:
        r = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode == 77:
            pytest.skip("overlayfs is not available here")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "stopping" and lines[1].startswith("demo-") and lines[2] == lines[1], r.stdout
    finally:
        shutil.rmtree(home, ignore_errors=True)


# -- RPM ----------------------------------------------------------------------------------


def test_rpm_builds(workdir: Path, dist: Path) -> None:
    _need("rpmbuild", apt="rpm")
    top = workdir / "rpm"
    (top / "SOURCES").mkdir(parents=True)
    shutil.copy(dist / f"tokend-{VERSION}.tar.gz", top / "SOURCES")
    env = {"PATH": SYSTEM_PATH, "HOME": str(workdir), "LC_ALL": "C.UTF-8"}
    spec = ROOT / "packaging" / "rpm" / "tokend.spec"
    # --nodeps: the BuildRequires name Fedora packages, not Debian ones.
    _run(["rpmbuild", "-bb", "--nodeps", "--define", f"_topdir {top}", str(spec)], env=env, timeout=300)
    rpms = list((top / "RPMS").rglob("tokend-*.rpm"))
    assert len(rpms) == 1, rpms
    files = _run(["rpm", "-qlp", str(rpms[0])], env=env).stdout.split()
    for needed in (
        "/usr/lib/systemd/user/tokend.socket",
        "/usr/lib/systemd/user/tokend.service",
        "/usr/share/man/man1/tokend.1",
        "/usr/share/bash-completion/completions/tokend",
    ):
        assert any(f.startswith(needed) for f in files), needed
    assert any(f.endswith("/bin/tokend") for f in files)
    assert any(f.endswith("/bin/tokend-print") for f in files)


# -- Homebrew, Arch, launchd ---------------------------------------------------------------


def test_homebrew_formula_syntax() -> None:
    _need("ruby", apt="ruby")
    formula = ROOT / "packaging" / "homebrew" / "tokend.rb"
    r = _run(["ruby", "-c", str(formula)], env={"PATH": SYSTEM_PATH})
    assert "Syntax OK" in r.stdout
    text = formula.read_text()
    assert "service do" in text and 'run [opt_bin/"tokend", "serve"]' in text
    assert "generate_completions_from_executable" in text and "man1.install" in text


def test_pkgbuild_syntax_and_functions_run(workdir: Path, source_tree: Path) -> None:
    """bash -n, then build() and package() for real (Debian's python3-build and -installer)."""
    pkgbuild = ROOT / "packaging" / "arch" / "PKGBUILD"
    _run(["bash", "-n", str(pkgbuild)], env={"PATH": SYSTEM_PATH})
    py = "/usr/bin/python3"
    probe = subprocess.run([py, "-c", "import build, installer, click, filelock, keyring, tomlkit"])
    if probe.returncode != 0:
        pytest.skip("python3-build/-installer and the runtime deps are needed to run the PKGBUILD")
    srcdir = workdir / "arch" / "src"
    pkgdir = workdir / "arch" / "pkg"
    srcdir.mkdir(parents=True)
    shutil.copytree(source_tree, srcdir / f"tokend-{VERSION}")
    shims = workdir / "arch" / "shims"
    shims.mkdir()
    (shims / "python").symlink_to(py)  # Arch's interpreter is "python"
    script = f'set -e; source "{pkgbuild}"; cd "$srcdir"; build; cd "$srcdir"; package'
    env = {"PATH": f"{shims}:{SYSTEM_PATH}", "HOME": str(workdir)}
    env.update(srcdir=str(srcdir), pkgdir=str(pkgdir))
    _run(["bash", "-c", script], env=env, timeout=300)
    for path in (
        "usr/lib/systemd/user/tokend.socket",
        "usr/lib/systemd/user/tokend.service",
        "usr/share/man/man1/tokend.1",
        "usr/share/zsh/site-functions/_tokend",
        "usr/share/fish/vendor_completions.d/tokend.fish",
    ):
        assert (pkgdir / path).exists(), path
    assert list(pkgdir.rglob("bin/tokend-print")), "the helper is installed"


PLIST_DTD = """\
<!ENTITY % plistObject "(array | data | date | dict | real | integer | string | true | false )" >
<!ELEMENT plist %plistObject;>
<!ATTLIST plist version CDATA "1.0" >
<!ELEMENT array (%plistObject;)*>
<!ELEMENT dict (key, %plistObject;)*>
<!ELEMENT key (#PCDATA)>
<!ELEMENT string (#PCDATA)>
<!ELEMENT data (#PCDATA)>
<!ELEMENT date (#PCDATA)>
<!ELEMENT true EMPTY>
<!ELEMENT false EMPTY>
<!ELEMENT real (#PCDATA)>
<!ELEMENT integer (#PCDATA)>
"""


def test_launchd_plist_parses_and_validates(workdir: Path) -> None:
    template = ROOT / "packaging" / "launchd" / "dev.tokend.plist"
    doc = plistlib.loads(template.read_bytes())
    assert doc["Label"] == "dev.tokend" and doc["ProgramArguments"] == ["@TOKEND@", "serve"]
    from tokend.service import launchd

    rendered = workdir / "rendered.plist"
    rendered.write_text(launchd.render("/opt/homebrew/bin/tokend", "/Users/me", {}))
    if shutil.which("xmllint") is None:
        pytest.skip("xmllint not installed (apt-get install libxml2-utils); plistlib parsed it")
    dtd = workdir / "plist-1.0.dtd"
    dtd.write_text(PLIST_DTD)
    for path in (template, rendered):
        _run(["xmllint", "--noout", "--nonet", "--dtdvalid", str(dtd), str(path)])


# -- man page ----------------------------------------------------------------------------


def test_man_page_is_generated_from_the_cli_and_current(workdir: Path) -> None:
    out = workdir / "generated"
    _run([sys.executable, str(ROOT / "packaging" / "generate.py"), str(out)])
    page = (out / "tokend.1").read_text()
    for command in ("tokend get", "tokend serve", "tokend status", "tokend service install"):
        assert f".SS {command}" in page.replace("\\-", "-"), command
    for name in ("tokend.bash", "_tokend", "tokend.fish"):
        assert "_TOKEND_COMPLETE" in (out / "completions" / name).read_text()
    if shutil.which("man"):
        r = subprocess.run(
            ["man", "--warnings", "-E", "UTF-8", "-l", str(out / "tokend.1")],
            capture_output=True,
            text=True,
            env={"PATH": SYSTEM_PATH, "MANWIDTH": "80"},
            timeout=60,
        )
        assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    assert page == (ROOT / "packaging" / "man" / "tokend.1").read_text(), (
        "packaging/man/tokend.1 is stale: "
        "python3 packaging/generate.py /tmp/g && cp /tmp/g/tokend.1 packaging/man/"
    )
