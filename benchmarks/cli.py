"""ecg-bench: measured figures, printed as a table or JSON."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

from ecg_edge.benchmarks.board import wait_quiet as wait_quiet_fn
from ecg_edge.benchmarks.report import compare_markdown, markdown
from ecg_edge.benchmarks.signal_path import as_dict, measure, pin_one_core
from ecg_edge.benchmarks.suite import DEFAULT_RECORD, Settings, compare, load_results, run_all
from ecg_edge.device.bundle import load_bundle
from ecg_edge.device.evaluation import to_jsonable
from ecg_edge.device.features import INPUTS
from ecg_edge.firmware_bridge.errors import BoundaryGroup, UserError, run_cli
from ecg_edge.firmware_bridge.records import list_wfdb_records


@click.group(cls=BoundaryGroup)
def cli() -> None:
    """Benchmarks of ecg-edge."""


@cli.command("signal-path")
@click.argument("records", nargs=-1, type=click.Path())
@click.option("--repeats", default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def signal_path_cmd(records: tuple[str, ...], repeats: int, as_json: bool) -> None:
    """Signal-path throughput (x real time) on one core over real records."""
    core = pin_one_core()
    paths = list(records) or [str(p) for p in list_wfdb_records(Path("data/mitdb"))]
    results = [as_dict(measure(p, repeats)) for p in paths]
    if as_json:
        click.echo(json.dumps({"core": core, "results": results}, indent=2))
        return
    click.echo(f"one core (cpu {core}); best of {repeats}\n")
    click.echo("| record | ECG s | beats | whole-array s | x real time | 1 s blocks s "
               "| x real time |")
    click.echo("|---|---|---|---|---|---|---|")
    for r in results:
        click.echo(f"| {r['record']} | {r['duration_s']:.0f} | {r['beats']} | "
                   f"{r['whole_s']:.3f} | {r['whole_x_realtime']:.0f} | {r['block_s']:.3f} | "
                   f"{r['block_x_realtime']:.0f} |")


@cli.command("run")
@click.argument("bundles", nargs=-1, required=True, type=click.Path())
@click.option("--run", "runs", multiple=True, type=click.Path(file_okay=False),
              help="Run folder of the bundle (Keras float model); repeat in the bundles' order. "
                   "Default: the run the bundle's provenance names, when it exists here.")
@click.option("--keras/--no-keras", default=None,
              help="Time the Keras float model (needs TensorFlow). Default: when a run folder "
                   "is known and TensorFlow is importable.")
@click.option("--record", default=DEFAULT_RECORD, show_default=True, type=click.Path(),
              help="Record for the whole-pipeline and memory figures.")
@click.option("--n", "calls", default=200, show_default=True, type=click.IntRange(10),
              help="Timed calls per round.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(1))
@click.option("--no-rss", is_flag=True, help="Skip the device-process memory run.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None,
              help="Store <board>.json and <board>.md here (e.g. benchmarks/results).")
@click.option("--compare", "compare_to", type=click.Path(dir_okay=False), default=None,
              help="Reference results (JSON) to compare with.")
@click.option("--tolerance", default=0.25, show_default=True, type=float,
              help="Relative change counted as a regression.")
@click.option("--fail-on-regression", is_flag=True,
              help="Exit 1 when a metric regressed beyond the tolerance.")
@click.option("--wait-quiet", type=float, default=0.0, show_default=True,
              help="Wait up to this many seconds for load average < 1 before measuring.")
def run_cmd(bundles, runs, keras, record, calls, rounds, no_rss, as_json, out_dir, compare_to,
            tolerance, fail_on_regression, wait_quiet):
    """Latency, throughput, memory, footprint and accuracy of BUNDLES, side by side."""
    if len(runs) > len(bundles):
        raise UserError(f"{len(runs)} --run folders for {len(bundles)} bundle(s)")
    if not 0 <= tolerance < 10:
        raise UserError(f"--tolerance {tolerance} must be a fraction (0.25 = 25 %)")
    reference = None
    if compare_to:
        try:
            reference = load_results(compare_to)
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(str(exc)) from None
    for b in bundles:  # fail fast, in one line, before anything is measured
        load_bundle(b)

    def log(msg: str) -> None:
        click.echo(msg, err=True)

    if wait_quiet:
        wait_quiet_fn(timeout_s=wait_quiet, log=log)
    pin_one_core()
    settings = Settings(record=record, n=calls, rounds=rounds, keras=keras, rss=not no_rss)
    doc = run_all(list(bundles), list(runs) + [None] * (len(bundles) - len(runs)), settings, log)
    text = markdown(doc)
    cmp = None
    if reference is not None:
        cmp = compare(doc, reference, tolerance)
        doc["comparison"] = cmp
        text += "\n" + compare_markdown(cmp)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / doc["board"]["slug"]
        stem.with_suffix(".json").write_text(json.dumps(to_jsonable(doc), indent=2) + "\n")
        stem.with_suffix(".md").write_text(text)
        log(f"wrote {stem}.json and {stem}.md")
    click.echo(json.dumps(to_jsonable(doc), indent=2) if as_json else text)
    if cmp is not None and fail_on_regression and cmp["regressions"]:
        click.echo(f"{len(cmp['regressions'])} regression(s) beyond {tolerance:.0%}: " + "; ".join(
            f"{r['model']} {r['metric']} {r['change']:+.1%}" for r in cmp["regressions"]),
            err=True)
        sys.exit(1)


@cli.command("rhythm")
@click.argument("records", nargs=-1, type=click.Path())
@click.option("--repeats", default=3, show_default=True)
@click.option("--no-pipeline", is_flag=True, help="Skip the whole-pipeline timing.")
@click.option("--bundle", "bundle_path", type=click.Path(), default=None,
              help="Rhythm settings and learned AF model from this bundle.")
@click.option("--json", "as_json", is_flag=True)
def rhythm_cmd(records: tuple[str, ...], repeats: int, no_pipeline: bool, bundle_path,
               as_json: bool) -> None:
    """Rhythm analysis cost per beat, RR-only throughput and the pipeline's real-time factor,
    on one core over annotated records."""
    from ecg_edge.benchmarks.rhythm import as_dict as rhythm_dict
    from ecg_edge.benchmarks.rhythm import measure as measure_rhythm

    core = pin_one_core()
    paths = list(records) or [str(p) for p in list_wfdb_records(Path("data/mitdb"))]
    cfg, af_model = None, None
    if bundle_path:
        from ecg_edge.device.bundle import load_bundle
        from ecg_edge.device.rhythm import RhythmConfig
        from ecg_edge.device.rhythm_model import load_af_model

        bundle = load_bundle(bundle_path)
        cfg, af_model = RhythmConfig.from_dict(bundle.manifest.rhythm), load_af_model(bundle)
    results = [rhythm_dict(measure_rhythm(p, repeats, cfg, not no_pipeline, af_model))
               for p in paths]
    if as_json:
        click.echo(json.dumps({"core": core, "results": results}, indent=2))
        return
    click.echo(f"one core (cpu {core}); best of {repeats} (CPU time)\n")
    click.echo("| record | ECG s | RR-only beats/s | monitor beats | rhythm µs/beat "
               "| on a strip µs/beat | rhythm x real time | pipeline x real time "
               "| rhythm share |")
    click.echo("|---|---|---|---|---|---|---|---|---|")
    num = (lambda v, f: "–" if v is None else format(v, f))  # noqa: E731
    for r in results:
        share = r["pipeline_rhythm_share"]
        click.echo(f"| {r['record']} | {r['ecg_s']:.0f} | {r['rr_only_beats_per_s']:.0f} | "
                   f"{r['monitor_beats']} | {r['monitor_us_per_beat']:.1f} | "
                   f"{num(r['strip_us_per_beat'], '.1f')} | "
                   f"{r['monitor_rhythm_x_realtime']:.0f} | "
                   f"{num(r['pipeline_x_realtime'], '.0f')} | "
                   f"{num(None if share is None else 100 * share, '.1f')} % |")


@cli.command("recipe-cv")
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(file_okay=False), default="runs/cv", show_default=True)
@click.option("--folds", default=4, show_default=True, type=click.IntRange(2))
@click.option("--arch", type=click.Choice(["cnn_ae", "tcn", "lstm_ae"]), default="cnn_ae",
              show_default=True)
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True)
@click.option("--records", default=None, help="Comma-separated record names (default: all).")
@click.option("--json", "as_json", is_flag=True)
def recipe_cv_cmd(folder, out, folds, arch, epochs, seed, records, as_json):
    """Train, calibrate, convert and bundle per fold; stream the held-out records (needs
    TensorFlow)."""
    from ecg_edge.benchmarks.recipe_cv import CvConfig, recipe_cv, render

    result = recipe_cv(Path(folder), Path(out), CvConfig(folds, arch, epochs, seed),
                       records.split(",") if records else None)
    click.echo(json.dumps(result, indent=2) if as_json else render(result))


@cli.command("noise-stress")
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option("--noise-dir", type=click.Path(file_okay=False, exists=True), required=True,
              help="Folder with the nstdb noise records (bw, ma).")
@click.option("--records", default=None,
              help="Comma-separated DS1 records (default: a representative subset of 8).")
@click.option("--noises", default="bw,ma", show_default=True,
              help="Noise recordings; NAME:CH takes channel CH on every lead (e.g. ma:1, the "
                   "other channel), A+B mixes recordings at equal power (e.g. bw+ma); "
                   "mains50, mains60 (any frequency) are mains hum.")
@click.option("--snrs", default="24,18,12,6,0,-6", show_default=True, help="SNRs in dB.")
@click.option("--bundle", "bundle_path", type=click.Path(), default=None,
              help="Also score with this bundle (its int8 model and monitor settings).")
@click.option("--no-reference", is_flag=True,
              help="Only the bundle, not the non-learned reference as well.")
@click.option("--no-quality", is_flag=True,
              help="Replay with the quality gate off (the signal path before signal quality).")
@click.option("--clean-check", is_flag=True,
              help="Also replay the clean records with the quality gate off (flags and beats "
                   "must stay within 0.1 point).")
@click.option("--resample-to", "resample_hz", type=float, default=None,
              help="Replay records and noise as a front-end at this rate (Hz) gives them.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--out-dir", type=click.Path(file_okay=False), default=None,
              help="Store noise_stress.json and noise_stress.md here (e.g. benchmarks/results).")
def noise_stress_cmd(folder, noise_dir, records, noises, snrs, bundle_path, no_reference,
                     no_quality, clean_check, resample_hz, as_json, out_dir):
    """EC57 noise stress test (nst's SNR) through the device monitor, per noise and SNR."""
    from ecg_edge.benchmarks.noise_stress import (
        DEFAULT_RECORDS,
        StressSettings,
        noise_stress,
        quality_off,
        render,
    )
    from ecg_edge.device import reference
    from ecg_edge.device.config import SignalConfig
    from ecg_edge.device.monitor import bundle_settings
    from ecg_edge.device.scoring import ModelScorer, reference_scorer

    try:
        snr_list = tuple(float(s) for s in snrs.split(","))
    except ValueError:
        raise UserError(f"--snrs {snrs!r}: give numbers in dB separated by commas") from None
    settings = StressSettings(snrs=snr_list, noises=tuple(noises.split(",")),
                              records=tuple(records.split(",")) if records else DEFAULT_RECORDS,
                              clean_check=clean_check, resample_hz=resample_hz)
    signal = quality_off if no_quality else (lambda cfg: cfg)
    scorers = {} if no_reference else {
        "reference:combined": (lambda: reference_scorer("combined"),
                               reference.THRESHOLDS["combined"], signal(SignalConfig()), None)}
    if bundle_path:
        bundle = load_bundle(bundle_path)
        m = bundle.manifest
        scorers[f"model:{m.architecture}:{m.model.variant}"] = (
            lambda: ModelScorer(bundle, m.model.variant), bundle.threshold(m.model.variant).value,
            signal(m.signal), bundle_settings(bundle))
    if not scorers:
        raise UserError("--no-reference without --bundle leaves nothing to score; give --bundle")
    doc = noise_stress(folder, noise_dir, scorers, settings, log=lambda s: click.echo(s, err=True))
    text = render(doc)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "noise_stress.json").write_text(json.dumps(to_jsonable(doc), indent=2) + "\n")
        (out / "noise_stress.md").write_text(text + "\n")
    click.echo(json.dumps(to_jsonable(doc), indent=2) if as_json else text)


@cli.command("quality-cost")
@click.argument("records", nargs=-1, required=True, type=click.Path())
@click.option("--noise", "noise_path", type=click.Path(), default=None,
              help="Also measure with this nstdb noise record added (EC57 protocol).")
@click.option("--snr", default=0.0, show_default=True, type=float, help="SNR in dB of --noise.")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1, 100))
@click.option("--json", "as_json", is_flag=True)
def quality_cost_cmd(records, noise_path, snr, repeats, as_json):
    """Cost of signal quality per second of signal on one core, and the monitor's real-time
    factor (clean and, with --noise, noisy)."""
    from ecg_edge.benchmarks.noise_stress import noisy_record, quality_cost
    from ecg_edge.device.config import SignalConfig
    from ecg_edge.device.evaluation import EC57_START_S
    from ecg_edge.firmware_bridge.records import read_record

    if not math.isfinite(snr):
        raise UserError(f"--snr {snr}: give a finite number of dB")
    core = pin_one_core()
    noise = read_record(noise_path) if noise_path else None
    rows = []
    for path in records:
        rec = read_record(path)
        variants = [rec] + ([noisy_record(rec, noise, snr, EC57_START_S)[0]] if noise else [])
        rows += [quality_cost(r, SignalConfig(), repeats) for r in variants]
    if as_json:
        click.echo(json.dumps({"core": core, "results": rows}, indent=2))
        return
    click.echo(f"one core (cpu {core}); best of {repeats}; µs of CPU per second of signal\n")
    click.echo("| record | signal s | beats | segment quality | second detector "
               "| flag credibility (all beats) | monitor x real time |")
    click.echo("|---|---|---|---|---|---|---|")
    for r in rows:
        click.echo(f"| {r['record']} | {r['signal_s']:.0f} | {r['beats']} | "
                   f"{r['segment_quality_us_per_s']:.1f} | {r['second_detector_us_per_s']:.1f} | "
                   f"{r['flag_credibility_us_per_s']:.1f} | {r['monitor_x_realtime']:.0f} |")


def _s_rule(s_long_rr_beats: int | None, s_abrupt_ratio: float | None,
            s_onset_p_below: float | None = None, s_sinus_p_above: float | None = None,
            s_abrupt_beats: int | None = None, s_long_p_below: float | None = None,
            irregular_threshold: float | None = None,
            s_run_rr_tolerance: float | None = None,
            s_onset_step: float | None = None, s_pace_tolerance: float | None = None,
            s_far_distance: float | None = None) -> dict:
    """The S rules' options that were given (the others keep Ds1CvConfig's)."""
    given = {"s_long_rr_beats": s_long_rr_beats, "s_abrupt_ratio": s_abrupt_ratio,
             "s_run_rr_tolerance": s_run_rr_tolerance, "s_onset_step": s_onset_step,
             "s_pace_tolerance": s_pace_tolerance, "s_far_distance": s_far_distance,
             "s_onset_p_below": s_onset_p_below, "s_sinus_p_above": s_sinus_p_above,
             "s_abrupt_beats": s_abrupt_beats, "s_long_p_below": s_long_p_below,
             "irregular_threshold": irregular_threshold}
    return {k: v for k, v in given.items() if v is not None}


def _s_long_rule_options(fn):
    """The long-term S rule's options, shared by ds1-cv and ds1-rescore."""
    fn = click.option("--s-far-distance", default=None, type=click.FloatRange(0, 10),
                      help="An S call further than this from the wearer's template is V (0: "
                           "off; default: Ds1CvConfig's).")(fn)
    fn = click.option("--s-pace-tolerance", default=None, type=click.FloatRange(0, 2),
                      help="An S call right after an S call needs its RR at most (1 + this) x "
                           "that call's, unless clearly early against the long-term RR (0: "
                           "off; default: Ds1CvConfig's).")(fn)
    fn = click.option("--s-onset-step", default=None, type=click.FloatRange(0, 1),
                      help="An S call right after an N call needs its RR below this fraction "
                           "of that beat's, unless clearly early against the long-term RR "
                           "(0: off; default: Ds1CvConfig's).")(fn)
    fn = click.option("--s-run-rr-tolerance", default=None, type=click.FloatRange(0, 1),
                      help="An S call carries over to the next beat of the wearer's shape that "
                           "keeps its RR within this fraction, before 0.9 x the long-term RR "
                           "(an SVT run; 0: off; default: Ds1CvConfig's).")(fn)
    fn = click.option("--s-abrupt-ratio", default=None, type=click.FloatRange(0, 1),
                      help="The long-term S rule only in runs whose first RR fell below this "
                           "fraction of the one before (0: no such guard; default: 0.9).")(fn)
    return click.option("--s-long-rr-beats", default=None, type=click.IntRange(0, 4096),
                        help="The long-term S rule over this many RR intervals (0: off; "
                             "default: 256).")(fn)


def _in_af_option(rule: str):
    """``--RULE-in-af/--RULE-outside-af``: whether a V rule also acts while AF is open."""
    return click.option(f"--{rule}-in-af/--{rule}-outside-af", default=None,
                        help="... also while AF is open (default: Ds1CvConfig's).")


@cli.command("ds1-cv")
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(file_okay=False), default="runs/ds1cv", show_default=True)
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2),
              help="Record-grouped folds over DS1 (22 = leave one record out).")
@click.option("--epochs", default=None, type=click.IntRange(1),
              help="Training epochs (default: the classifier's).")
@click.option("--boot", default=300, show_default=True, help="Bootstrap resamples of records.")
@click.option("--seed", default=0, show_default=True)
@click.option("--ensemble", default=None, type=click.IntRange(1, 4),
              help="Members (seeds) averaged in one graph (default: the classifier's).")
@click.option("--noise-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="MIT-BIH NST noise records (ma, bw) added to training beats at 12-24 dB.")
@click.option("--inputs", type=click.Choice([m for m in INPUTS if m.startswith("wearer+rr")]),
              default=None,
              help="Model input (default: the classifier's); +shape adds the beat's shape "
                   "against the wearer's template (device.morphology), +atrial the local/next "
                   "RR against the long-term RR and the P wave against the template's; "
                   "+upright turns every beat's QRS the way the wearer's template points up "
                   "(an inverted lead gives the same inputs).")
@click.option("--long-rr-beats", default=None, type=click.IntRange(8, 4096),
              help="RR intervals of the wearer's long-term RR (default: the classifier's).")
@click.option("--template-mix", default=None, type=click.FloatRange(0, 1),
              help="Fraction of training beats per epoch whose template is moved towards the "
                   "beat (a template with the wearer's PVCs in it; default: the classifier's).")
@click.option("--record-weight", default=None, type=click.FloatRange(0, 2),
              help="Within each class a record's beats weigh (its count) ** -this, so a few "
                   "PVC-rich records do not teach most of V (default: the classifier's).")
@click.option("--deploy-guard", default=None, type=click.FloatRange(0, 10),
              help="The device's context keeps on-time beats further than this from the "
                   "wearer's template out of it; held-out records, thresholds, DS2 and the "
                   "shipped bundle use it, training does not (0: off; default: Ds1CvConfig's).")
@click.option("--deploy-guard-beats", default=None, type=click.IntRange(1, 4096),
              help="... unless this many such beats come in a row (default: Ds1CvConfig's).")
@click.option("--deploy-escape-pause", default=None, type=click.FloatRange(0, 10),
              help="... or, where one of them ended a pause this many times the local RR, "
                   "ContextConfig.learn_escape_beats (an escape rhythm; 0: off; default: "
                   "Ds1CvConfig's).")
@click.option("--polarity-flip", default=None, type=click.FloatRange(0, 1),
              help="Fraction of training beats per epoch seen on an inverted lead (default: "
                   "the classifier's).")
@click.option("--lead-inverted", is_flag=True,
              help="Also score every held-out record and the visible DS2 records on their "
                   "inverted lead, under the same thresholds.")
@click.option("--other-lead", type=click.Choice(["score", "train"]), default=None,
              help="score: also score every held-out record and the visible DS2 records on "
                   "their other lead (V1, V2, V4 or V5 beside MLII) under the same thresholds; "
                   "train: also train every model on the training records' other lead.")
@click.option("--through-device", is_flag=True,
              help="Also ship each fold's model as a bundle and replay its held-out records "
                   "through the device's monitor (leave one record out on the device's code "
                   "path; a conversion per fold).")
@click.option("--fold-min-agreement", type=click.FloatRange(0.5, 1.0), default=None,
              help="With --through-device: the parity gate's decision agreement each fold's "
                   "bundle needs (default: the gate's 0.99; the shipped bundle always needs "
                   "0.99). Each fold's agreement is in the result's fold_gate.")
@_s_long_rule_options
@click.option("--ship", is_flag=True,
              help="Also convert the all-DS1 model into the shipped bundle device/bundles/ds1 "
                   "(int8 behind the parity gate).")
@click.option("--json", "as_json", is_flag=True)
def ds1_cv_cmd(folder, out, folds, epochs, boot, seed, ensemble, noise_dir, inputs,
               long_rr_beats, template_mix, record_weight, deploy_guard, deploy_guard_beats,
               deploy_escape_pause, polarity_flip, lead_inverted, other_lead, through_device,
               fold_min_agreement, s_long_rr_beats,
               s_abrupt_ratio, s_run_rr_tolerance, s_onset_step, s_pace_tolerance,
               s_far_distance, ship, as_json):
    """The inter-patient protocol: beat classifier cross-validated by record on DS1, tested on
    the visible DS2 records, beside the reference (needs TensorFlow)."""
    from ecg_edge.benchmarks.ds1_cv import Ds1CvConfig, ds1_cv, render, ship_bundle
    from ecg_edge.train.classifier import ClassifierConfig

    ccfg = ClassifierConfig(seed=seed, **({"epochs": epochs} if epochs else {}),
                            **({"ensemble": ensemble} if ensemble else {}),
                            **({"inputs": inputs} if inputs else {}),
                            **({"long_rr_beats": long_rr_beats} if long_rr_beats else {}),
                            **({"template_mix_fraction": template_mix}
                               if template_mix is not None else {}),
                            **({"record_weight_power": record_weight}
                               if record_weight is not None else {}),
                            **({"polarity_flip": polarity_flip}
                               if polarity_flip is not None else {}))
    result = ds1_cv(Path(folder), Path(out),
                    Ds1CvConfig(folds, boot, seed, noise_dir=str(Path(noise_dir).resolve())
                                if noise_dir else "",
                                **_s_rule(s_long_rr_beats, s_abrupt_ratio,
                                          s_run_rr_tolerance=s_run_rr_tolerance,
                                          s_onset_step=s_onset_step,
                                          s_pace_tolerance=s_pace_tolerance,
                                          s_far_distance=s_far_distance),
                                **{k: v for k, v in (("deploy_guard", deploy_guard),
                                                     ("deploy_guard_beats", deploy_guard_beats),
                                                     ("deploy_escape_pause", deploy_escape_pause))
                                   if v is not None}, lead_inverted=lead_inverted,
                                other_lead=other_lead or "", through_device=through_device,
                                **({"fold_min_agreement": fold_min_agreement}
                                   if fold_min_agreement is not None else {})),
                    ccfg,
                    log=lambda m: click.echo(m, err=True))
    if ship:
        result["shipped"] = ship_bundle(Path(result["run"]), Path(out) / "ship.log")
    click.echo(json.dumps(result, indent=2) if as_json else render(result))


@cli.command("ds1-device")
@click.argument("cv_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option("--boot", default=300, show_default=True, help="Bootstrap resamples of records.")
@click.option("--resample-to", type=float, default=None,
              help="Replay each record as a front-end at this rate (Hz) would give it.")
@click.option("--invert-lead", is_flag=True, help="Replay each record with its lead inverted.")
@click.option("--json", "as_json", is_flag=True)
def ds1_device_cmd(cv_dir, folder, boot, resample_to, invert_lead, as_json):
    """A finished `ds1-cv --through-device` run (CV_DIR): each held-out record of FOLDER replayed
    again through the monitor with its fold's bundle, under today's device code (no
    retraining; about half a minute for DS1): beat types, and rhythm episodes (VT from the
    classes of a model that never saw the record)."""
    from ecg_edge.benchmarks.ds1_cv import Ds1CvConfig, render_replay, replay_folds

    r = replay_folds(Path(cv_dir), Path(folder), Ds1CvConfig(boot=boot), resample_to,
                     invert_lead)
    click.echo(json.dumps(r, indent=2) if as_json else render_replay(r))


@cli.command("ds1-rescore")
@click.argument("cv_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option("--out", type=click.Path(file_okay=False), default="runs/ds1rescore",
              show_default=True)
@click.option("--boot", default=300, show_default=True, help="Bootstrap resamples of records.")
@click.option("--bundle", "bundle_path", type=click.Path(file_okay=False, exists=True),
              default=None, help="Write the re-chosen int8 thresholds and rules into this "
                                 "bundle's classes section (a bundle of the run's own model).")
@_s_long_rule_options
@click.option("--s-abrupt-beats", default=None, type=click.IntRange(1, 4096),
              help="... within this many RR intervals (default: Ds1CvConfig's).")
@click.option("--s-onset-p-below", default=None, type=click.FloatRange(0, 1),
              help="... or whose first beat's P wave correlates with the wearer's below this "
                   "(0: off; default: Ds1CvConfig's).")
@click.option("--s-long-p-below", default=None, type=click.FloatRange(0, 1),
              help="The long-term S rule only where the beat's P wave correlates with the "
                   "wearer's below this (0: off; default: Ds1CvConfig's).")
@click.option("--s-sinus-p-above", default=None, type=click.FloatRange(0, 1),
              help="RR irregularity withholds no S call where the previous beats' median P-wave "
                   "correlation with the wearer's is at least this (0: off; default: "
                   "Ds1CvConfig's).")
@click.option("--irregular-threshold", default=None, type=click.FloatRange(0, 1),
              help="RR irregularity above which S calls are withheld (default: 0.1).")
@click.option("--v-far-distance", default=None, type=click.FloatRange(0, 3),
              help="V call for a beat further than this from the wearer's template, whatever "
                   "p(V) (wearer amplitude units; 0: off; default: Ds1CvConfig's).")
@_in_af_option("v-far")
@click.option("--v-aberrant-pause-below", default=None, type=click.FloatRange(0, 4),
              help="A V call becomes S where the RR before plus the RR after the beat, over the "
                   "local RR, stay under this (no compensatory pause) and its QRS onset is the "
                   "wearer's (aberrant APC; 0: off; default: Ds1CvConfig's).")
@click.option("--v-aberrant-onset-above", default=None, type=click.FloatRange(-1, 1),
              help="... the QRS onset's correlation with the wearer's template at least this "
                   "(default: Ds1CvConfig's).")
@click.option("--v-wide-ratio", default=None, type=click.FloatRange(0, 3),
              help="V evidence x --v-wide-scale for a beat in good signal whose QRS is wider "
                   "than this x the wearer's (0: off; default: Ds1CvConfig's).")
@click.option("--v-wide-scale", default=None, type=click.FloatRange(1, 3),
              help="... the factor (default: Ds1CvConfig's).")
@click.option("--v-wide-distance", default=None, type=click.FloatRange(0, 3),
              help="... only beyond this template distance (default: Ds1CvConfig's).")
@_in_af_option("v-wide")
@click.option("--v-like-corr", default=None, type=click.FloatRange(0, 0.999),
              help="V evidence for a beat that correlates above this with the wearer's own "
                   "confidently called V beats (device.ectopy; 0: off; default: "
                   "Ds1CvConfig's).")
@click.option("--v-like-support", default=None, type=click.IntRange(1),
              help="... with a template made of at least this many beats (default: "
                   "Ds1CvConfig's).")
@_in_af_option("v-like")
@click.option("--v-run-rr-s", default=None, type=click.FloatRange(0, 3),
              help="A beat within this RR (s) of a V call needs no PVC timing for its own V "
                   "call (a VT run's beats; 0: off; default: Ds1CvConfig's).")
@click.option("--v-reversed-corr", default=None, type=click.FloatRange(-1, 0),
              help="While AF is open, V evidence for a beat whose QRS correlates with the "
                   "wearer's template at or below this (reversed; 0: off; default: "
                   "Ds1CvConfig's).")
@click.option("--v-reversed-floor", default=None, type=click.FloatRange(0, 1),
              help="... and whose p(V) is at least this (default: Ds1CvConfig's).")
@click.option("--s-p-wave-below", default=None, type=click.FloatRange(0, 1),
              help="An early beat of the wearer's shape whose P wave correlates with the "
                   "wearer's below this, where the wearer's P waves are there, is S (0: off; "
                   "default: Ds1CvConfig's).")
@click.option("--s-p-wave-rr", default=None, type=click.FloatRange(0, 1, min_open=True),
              help="... early: its RR under this x the shorter of the local and long-term RR "
                   "(default: Ds1CvConfig's).")
@click.option("--af-v-floor/--no-af-v-floor", "v_af_floor", default=None,
              help="Keep the V threshold in AF at or above the sinus one (default: "
                   "Ds1CvConfig's).")
@click.option("--json", "as_json", is_flag=True)
def ds1_rescore_cmd(cv_dir, folder, out, boot, bundle_path, s_long_rr_beats, s_abrupt_ratio,
                    s_run_rr_tolerance, s_onset_step, s_pace_tolerance, s_far_distance,
                    s_abrupt_beats,
                    s_onset_p_below,
                    s_long_p_below, s_sinus_p_above, irregular_threshold, v_far_distance,
                    v_far_in_af, v_aberrant_pause_below, v_aberrant_onset_above, v_wide_ratio,
                    v_wide_scale, v_wide_distance, v_wide_in_af, v_like_corr, v_like_support,
                    v_like_in_af, v_run_rr_s, v_reversed_corr, v_reversed_floor,
                    s_p_wave_below, s_p_wave_rr, v_af_floor, as_json):
    """A finished ds1-cv run (CV_DIR) re-scored under today's class rules, no retraining
    (FOLDER: the records it ran on, for their rhythm annotations)."""
    from ecg_edge.benchmarks.ds1_cv import Ds1CvConfig, render, rescore

    result = rescore(Path(cv_dir), Path(folder), Path(out),
                     Ds1CvConfig(boot=boot, **_s_rule(s_long_rr_beats, s_abrupt_ratio,
                                                         s_onset_p_below, s_sinus_p_above,
                                                         s_abrupt_beats, s_long_p_below,
                                                         irregular_threshold,
                                                         s_run_rr_tolerance, s_onset_step,
                                                         s_pace_tolerance, s_far_distance),
                                 **{k: v for k, v in (("v_far_distance", v_far_distance),
                                                      ("v_far_in_af", v_far_in_af),
                                                      ("v_aberrant_pause_below",
                                                       v_aberrant_pause_below),
                                                      ("v_aberrant_onset_above",
                                                       v_aberrant_onset_above),
                                                      ("v_wide_ratio", v_wide_ratio),
                                                      ("v_wide_scale", v_wide_scale),
                                                      ("v_wide_distance", v_wide_distance),
                                                      ("v_wide_in_af", v_wide_in_af),
                                                      ("v_like_corr", v_like_corr),
                                                      ("v_like_support", v_like_support),
                                                      ("v_like_in_af", v_like_in_af),
                                                      ("v_run_rr_s", v_run_rr_s),
                                                      ("v_reversed_corr", v_reversed_corr),
                                                      ("v_reversed_floor", v_reversed_floor),
                                                      ("s_p_wave_below", s_p_wave_below),
                                                      ("s_p_wave_rr", s_p_wave_rr),
                                                      ("v_af_floor", v_af_floor))
                                    if v is not None}),
                     Path(bundle_path) if bundle_path else None)
    click.echo(json.dumps(result, indent=2) if as_json else render(result))


@cli.command("strip-alarms")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--bundle", "bundle_path", type=click.Path(), default=None,
              help="Bundle to replay with (default: the shipped device/bundles/ds1).")
@click.option("--labels", default="N,O,~", show_default=True,
              help="Strip labels to replay (CinC 2017: N, A, O, ~).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first this many strips of each label.")
@click.option("--resample-to", "resample_hz", type=float, default=None,
              help="Replay each strip as a front-end at this rate (Hz) would give it.")
@click.option("--invert-lead", is_flag=True, help="Replay each strip with its lead inverted.")
@click.option("--json", "as_json", is_flag=True)
def strip_alarms_cmd(folder, bundle_path, labels, limit, resample_hz, invert_lead, as_json):
    """Rhythm episodes the device opens on short strips without that rhythm, per 24 h."""
    from ecg_edge.benchmarks.strip_alarms import strip_alarms, table
    from ecg_edge.device.cli import SHIPPED_BUNDLE

    out = strip_alarms(folder, bundle_path or SHIPPED_BUNDLE, labels, limit,
                       resample_hz=resample_hz, invert_lead=invert_lead)
    click.echo(json.dumps(to_jsonable(out), indent=2) if as_json else table(out))


def main() -> None:
    run_cli(cli)


if __name__ == "__main__":
    main()
