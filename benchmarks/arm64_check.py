"""Prove the Pi install on a clean Debian bookworm arm64 root under qemu, runtime by runtime.

What a Raspberry Pi 4/5 with Raspberry Pi OS (bookworm, arm64, Python 3.11) would do, done in a
debootstrapped root through qemu-user emulation: a fresh venv per runtime version, the wheel of
this repository without TensorFlow, `ecg-device selftest` (golden vectors) and `ecg-device
replay` of a real record, whose flags are compared beat by beat with this x86 machine's. The
result is stored per board beside the benchmarks. Emulation proves the arm64 builds of the
runtimes compute what x86 computes; it says nothing of a Pi's speed.

Needs root, debootstrap, qemu-user-static with binfmt (Debian: `apt-get install debootstrap
qemu-user-static binfmt-support`) and the package registries. Run:
    sudo python -m ecg_edge.benchmarks.arm64_check --bundle BUNDLE --root runs/arm64
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

from ecg_edge.device.events import read_beat_events

#: Runtime sets tried, each in its own venv (pip requirement strings).
RUNTIMES = {
    "ai-edge-litert 1.4.0": ["ai-edge-litert==1.4.0"],
    "ai-edge-litert 2.0.3": ["ai-edge-litert==2.0.3"],
    "ai-edge-litert 2.1.6": ["ai-edge-litert==2.1.6"],
    "ai-edge-litert 2.2.0": ["ai-edge-litert==2.2.0"],
    "ai-edge-litert 2.3.0": ["ai-edge-litert==2.3.0"],
    "tflite-runtime 2.14.0 + numpy<2": ["tflite-runtime==2.14.0", "numpy<2"],
    "tflite-runtime 2.14.0 + numpy 2": ["tflite-runtime==2.14.0", "numpy>=2"],
}
MIRROR = "http://deb.debian.org/debian"
RECORD = Path(__file__).resolve().parents[1] / "data" / "mitdb" / "119"


def sh(cmd: list[str], timeout: float = 1800, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def make_root(root: Path) -> None:
    if (root / "usr/bin/python3").exists():
        return
    out = sh(["debootstrap", "--arch=arm64", "--variant=minbase",
              "--include=python3,python3-venv,python3-pip,ca-certificates", "bookworm",
              str(root), MIRROR], timeout=3600)
    if out.returncode:
        raise click.ClickException(f"debootstrap failed: {out.stderr[-500:]}")


@contextlib.contextmanager
def mounted(root: Path):
    """/proc and /dev inside the root, the host's CA bundle and resolver (a proxy may sign)."""
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
    done = []
    try:
        for what in ("proc", "dev"):
            if sh(["mountpoint", "-q", str(root / what)]).returncode:
                sh(["mount", "--bind", f"/{what}", str(root / what)], check=True)
                done.append(root / what)
        yield
    finally:
        for p in reversed(done):
            sh(["umount", "-l", str(p)])


#: The CPU qemu emulates (QEMU_CPU): a Raspberry Pi 4's core by default. qemu's default "max"
#: CPU has extensions no Pi has (SVE, i8mm), and XNNPack would pick kernels a Pi never runs.
CPU = {"cpu": "cortex-a72"}


def chroot(root: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = ["env", "-i", "PATH=/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8",
           f"QEMU_CPU={CPU['cpu']}"]
    return sh(["chroot", str(root), *env, *args], timeout=timeout)


def run_one(root: Path, name: str, reqs: list[str], wheel: str, x86: dict, extra: str = "") -> dict:
    slug = "".join(c if c.isalnum() else "-" for c in name)
    venv = f"/opt/venv-{slug}"
    res: dict = {"runtime": name, "requirements": reqs}
    t0 = time.monotonic()
    chroot(root, "rm", "-rf", venv)
    chroot(root, "/usr/bin/python3", "-m", "venv", venv)
    pip_install = (f"{venv}/bin/pip", "install", "--quiet")
    if extra:  # as a user installs it: pip chooses the versions within the extra's bounds
        pip = chroot(root, *pip_install, f"{wheel}{extra}")
    else:  # the wheel alone, then its lean dependencies and the runtime under test
        pip = chroot(root, *pip_install, "--no-deps", wheel)
        if pip.returncode == 0:
            pip = chroot(root, *pip_install, "numpy", "pyserial", "click", *reqs)
    res["install_ok"] = pip.returncode == 0
    if not res["install_ok"]:
        res["error"] = pip.stderr.strip().splitlines()[-1] if pip.stderr.strip() else "?"
        return res
    freeze = chroot(root, f"{venv}/bin/pip", "freeze").stdout
    res["versions"] = {ln.split("==")[0]: ln.split("==")[1] for ln in freeze.splitlines()
                       if "==" in ln and ln.split("==")[0].lower() in
                       ("numpy", "ai-edge-litert", "tflite-runtime")}
    st = chroot(root, f"{venv}/bin/ecg-device", "selftest", "/opt/check/bundle", "--json",
                timeout=600)
    res["selftest_rc"] = st.returncode
    with contextlib.suppress(json.JSONDecodeError):
        report = json.loads(st.stdout)
        res["selftest_ok"] = report["ok"]
        res["max_abs_error"] = report["max_abs_error"]
        res["runtime_used"] = report["runtime"]
    if st.returncode and "selftest_ok" not in res:
        res["selftest_error"] = (st.stderr.strip().splitlines() or [f"exit {st.returncode}"])[-1]
    ev = f"/opt/check/events-{slug}.jsonl"
    rp = chroot(root, f"{venv}/bin/ecg-device", "replay", "/opt/check/119", "--bundle",
                "/opt/check/bundle", "--quiet", "--events", ev, timeout=900)
    res["replay_rc"] = rp.returncode
    if rp.returncode:
        res["replay_error"] = (rp.stderr.strip().splitlines() or [f"exit {rp.returncode}"])[-1]
    else:
        arm = read_beat_events(root / ev.lstrip("/"))
        res.update(compare(x86, arm))
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


def compare(x86: dict, arm: dict) -> dict:
    same_beats = len(x86["sample"]) == len(arm["sample"]) and bool(
        (x86["sample"] == arm["sample"]).all())
    out = {"beats": int(len(arm["sample"])), "same_beats": same_beats}
    if same_beats:
        import numpy as np

        ok = np.isfinite(x86["score"]) & np.isfinite(arm["score"])
        out["flags_equal"] = bool((x86["flag"] == arm["flag"]).all())
        out["flag_differences"] = int((x86["flag"] != arm["flag"]).sum())
        out["max_score_difference"] = float(np.abs(x86["score"][ok] - arm["score"][ok]).max())
    return out


def render(result: dict) -> str:
    lines = [f"# {result['board']}", "", result["what"], "",
             f"Bundle `{result['bundle_sha256'][:12]}`, record {result['record']} "
             f"({result['x86_beats']} beats, {result['x86_flagged']} flagged on x86). "
             f"Command: `{result['command']}`.", "",
             "| runtime | installed | selftest (max error) | replay | flags equal x86 | "
             "max score diff |", "|---|---|---|---|---|---|"]
    for r in result["runs"]:
        st = ("pass" if r.get("selftest_ok") else "FAIL") + (
            f" ({r['max_abs_error']:.3g})" if "max_abs_error" in r else "") \
            if "selftest_ok" in r else r.get("selftest_error", r.get("error", "-"))
        rp = "-" if "replay_rc" not in r else ("ok" if r["replay_rc"] == 0
                                                else r.get("replay_error", "failed"))
        versions = ", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items())
        lines.append(f"| {r['runtime']} | {versions or r.get('error', '-')} "
                     f"| {st} | {rp} | {r.get('flags_equal', '-')} "
                     f"| {r.get('max_score_difference', '-')} |")
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--bundle", "bundle", type=click.Path(exists=True, file_okay=False), required=True)
@click.option("--root", type=click.Path(file_okay=False), default="runs/arm64", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              default="benchmarks/results/install",
              show_default=True)
@click.option("--only", default=None, help="Comma-separated subset of runtime names.")
@click.option("--cpu", default="cortex-a72", show_default=True,
              help="CPU qemu emulates: cortex-a72 (Pi 4), cortex-a76 (Pi 5), max.")
def main(bundle: str, root: str, out_dir: str, only: str | None, cpu: str) -> None:
    """Install, self-test and replay on Debian bookworm arm64 under qemu, per runtime."""
    from ecg_edge.device.bundle import load_bundle

    CPU["cpu"] = cpu
    names = only.split(",") if only else list(RUNTIMES)
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        raise click.BadParameter(f"unknown runtime(s) {unknown}; known: {list(RUNTIMES)}",
                                 param_hint="--only")
    root_p = Path(root).resolve() / "bookworm-arm64"
    make_root(root_p)
    repo = Path(__file__).resolve().parents[1]
    check = root_p / "opt/check"
    shutil.rmtree(check, ignore_errors=True)
    check.mkdir(parents=True)
    shutil.copytree(bundle, check / "bundle")
    for ext in ("hea", "dat", "atr"):
        shutil.copy(RECORD.with_suffix(f".{ext}"), check / f"119.{ext}")
    w = sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(check),
            str(repo)])
    if w.returncode:
        raise click.ClickException(f"building the wheel failed: {w.stderr[-500:]}")
    wheel = "/opt/check/" + next(check.glob("*.whl")).name
    x86_ev = check / "x86.jsonl"
    sh([sys.executable, "-m", "ecg_edge.device.cli", "replay", str(RECORD), "--bundle", bundle,
        "--quiet", "--events", str(x86_ev)], check=True, cwd=repo)
    x86 = read_beat_events(x86_ev)
    runs = []
    with mounted(root_p):
        for name in names:
            click.echo(f"{name} ...", err=True)
            runs.append(run_one(root_p, name, RUNTIMES[name], wheel, x86))
            click.echo(json.dumps(runs[-1]), err=True)
        click.echo("the [device] extra as a user installs it ...", err=True)
        runs.append(run_one(root_p, "[device] extra (pip's choice)", [], wheel, x86,
                            extra="[device]"))
        click.echo(json.dumps(runs[-1]), err=True)
    result = {
        "board": f"arm64 {cpu} (Debian bookworm, Python 3.11) under qemu-user on x86-64",
        "qemu_cpu": cpu,
        "what": __doc__.strip().split("\n\n")[0].replace("\n", " "),
        "bundle_sha256": load_bundle(bundle).manifest.model.sha256,
        "record": "mitdb/119", "x86_beats": int(len(x86["sample"])),
        "x86_flagged": int(x86["flag"].sum()),
        "command": "sudo python -m ecg_edge.benchmarks.arm64_check --bundle BUNDLE", "runs": runs,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"arm64-qemu-{cpu}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"arm64-qemu-{cpu}.md").write_text(render(result))
    click.echo(render(result))


if __name__ == "__main__":
    main()
