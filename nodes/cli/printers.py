"""How the command line shows each command's result (``--json`` prints the result itself instead)."""

from __future__ import annotations

import json
import sys
from typing import Any


def seconds(value: float) -> str:
    return f"{value / 60:.1f} min" if value >= 120 else f"{value:.1f} s"


def enhanced(result: dict[str, Any]) -> None:
    print(f"original:  {result['original']}")
    print(f"enhanced:  {result['prompt']}")
    print(f"negative:  {result['negative']}")
    print(f"score {result['score']:.0f}; {result['summary']}")
    for step in result["trace"]:
        what = f"score {step['score']:.0f}" if step["score"] is not None else (step["text"] or step["note"])
        print(f"  {step['iteration']} {step['role']:<6} {step['backend']:<12} {what}")
        if step["role"] == "critic" and step["checks"]:
            print(f"    failed: {', '.join(c['id'] for c in step['checks'])}")
    for fallback in result["fallbacks"]:
        print(f"fallback: {fallback}")


def plan(plan: dict[str, Any]) -> None:
    fam = plan["family"]
    print(f"Pipeline {plan['pipeline']} at {plan['preset']['display_name']} "
          f"(tier {plan['tier']}, level {plan['preset']['level']}) — {plan['description']}")
    print(f"Model family: {fam['family']} ({fam['source']}: {fam['evidence']})\n")
    header = f"{'stage':<16} {'task type':<22} {'workflow':<40} {'expected':>10} {'range':>17} {'VRAM':>8}"
    print(header)
    print("-" * len(header))
    for stage in plan["stages"]:
        t = stage["estimate"]["time_s"]
        print(f"{stage['id']:<16} {stage['task_type']:<22} {stage['workflow']:<40} {seconds(t['expected']):>10} "
              f"{seconds(t['min']) + '-' + seconds(t['max']):>17} {stage['estimate']['vram_gb']:>6.1f}GB")
        params = stage["parameters"]
        shown = ", ".join(f"{k}={v}" for k, v in params.items()
                          if k in ("steps", "cfg", "sampler_name", "scheduler", "width", "height", "batch_size",
                                   "denoise", "frames", "fps", "max_tokens", "sample_rate", "enhance_backend",
                                   "enhance_iterations"))
        print(f"{'':<16} {shown}")
        runs = f"runs {stage['runs']}x" + (f" ({stage['note']})" if stage.get("note") else "")
        passes = "; ".join(f"{p['name']} {p['steps']} steps {p['width']}x{p['height']} denoise {p['denoise']:g}"
                           for p in stage["passes"])
        print(f"{'':<16} {runs}" + (f"; passes: {passes}" if passes else ""))
    totals = plan["totals"]
    print("-" * len(header))
    print(f"{'total':<80} {seconds(totals['time_s']['expected']):>10} "
          f"{seconds(totals['time_s']['min']) + '-' + seconds(totals['time_s']['max']):>17} "
          f"{totals['vram_gb']:>6.1f}GB peak, ${totals['cost_usd']:.4f}")
    print(f"The whole pipeline runs as workflow {plan['workflow']}; the total counts every run.")
    for skipped in plan.get("skipped", []):
        needs = f"; needs {skipped['needs']}" if skipped["needs"] else ""
        print(f"skipped {skipped['id']} ({skipped['task_type']}): {skipped['reason']}{needs}")
    enhanced = plan.get("enhanced")
    if enhanced:
        print(f"\nPrompt, enhanced (score {enhanced['score']:.0f}, {enhanced['iterations']} iteration(s)): "
              f"{enhanced['prompt']}")
        for stage in plan["stages"]:
            if stage["category"] == "image":
                print(f"  {stage['id']}: {enhanced['prompt']}{stage['prompt_suffix']}")
        print(f"  negative: {enhanced['negative']}")
    calibrated = all(s["estimate"]["calibrated"] for s in plan["stages"])
    print("\nEstimates are " + ("calibrated from recorded runs." if calibrated else
                                "priors for a reference GPU; they calibrate from runs recorded in ComfyUI."))


def compare(result: dict[str, Any]) -> None:
    keys = ["steps", "cfg", "sampler_name", "scheduler", "width", "height", "hires_enabled", "hires_width",
            "refinement"]
    columns = result["presets"]
    print(f"{'':<16}" + "".join(f"{c['preset']['id']:>16}" for c in columns))
    for key in keys:
        print(f"{key:<16}" + "".join(f"{str(c['parameters'].get(key)):>16}" for c in columns))
    print(f"{'time (exp.)':<16}" + "".join(f"{seconds(c['estimate']['time_s']['expected']):>16}" for c in columns))
    print(f"{'VRAM':<16}" + "".join(f"{c['estimate']['vram_gb']:>14.1f}GB" for c in columns))
    print(f"{'vs standard':<16}" + "".join(f"{c['vs_standard']['time_ratio']:>15}x" for c in columns))


def recommendation(result: dict[str, Any]) -> None:
    print(f"Use case {result['use_case']}: {result['tier']} (confidence {result['confidence']:.0%})")
    print(f"  {result['reasoning']}")
    print(f"  vs standard: {result['trade_offs']['summary']}")
    print(f"  expected {seconds(result['estimate']['time_s']['expected'])}, {result['estimate']['vram_gb']:.1f} GB")
    for alt in result["alternatives"]:
        print(f"  alternative {alt['tier']} ({alt['direction']}): {alt['time_ratio_vs_recommended']}x the time")


def presets(result: dict[str, Any]) -> None:
    for preset in result["presets"]:
        kind = "built-in" if preset["builtin"] else f"extends {preset['extends']}"
        print(f"{preset['id']:<20} level {preset['level']}  {kind:<20} "
              f"~{seconds(preset['estimate']['time_s']['expected'])}  {preset['description']}")
    for problem in result["problems"]:
        print(f"skipped {problem['file']}: {problem['error']}")


def scores(result: dict[str, Any]) -> None:
    scores, files = result["scores"], result["files"]
    names = list(scores["normalised"])
    print(f"{'rank':<5} {'overall':>8} " + " ".join(f"{n:>11}" for n in names) + "  file")
    for rank, index in enumerate(result["ranking"]["order"], 1):
        overall = scores["overall"][index] if index < len(scores["overall"]) else float("nan")
        values = " ".join(f"{scores['metrics'][n][index]:>11.3f}" for n in names)
        mark = " *" if index in result["ranking"]["chosen"] else ""
        print(f"{rank:<5} {overall:>8.2f} {values}  {files[index]}{mark}")
    for warning in dict.fromkeys([*scores["warnings"], *result["ranking"]["warnings"]]):  # each once
        print(f"warning: {warning}")
    if result["ranking"]["below_threshold"]:
        print(f"warning: the best score is below the threshold {result['ranking']['threshold']:g}")


def pipelines(result: dict[str, Any]) -> None:
    for pipe in result["pipelines"]:
        stages = " -> ".join(f"{s['id']} ({s['task_type']})" for s in pipe["stages"])
        print(f"{pipe['name']}: {pipe['description']}\n    {stages}")


def curated(result: dict[str, Any]) -> None:
    frames = result["frames"]
    kept = sum(1 for f in frames if f["status"] != "failed")
    print(f"storyboard: {len(result['clips'])} clips, {kept}/{len(frames)} frames kept, tier {result['tier']}, "
          f"{result['duration_s']:.1f} s; status {result['status']}")
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    print(f"manifest: {result['files']['manifest']}")
    print(f"report:   {result['files']['report']}")


def run(result: dict[str, Any]) -> None:
    if "jobs" in result:  # --distributed
        distributed_run(result)
        return
    print(f"prompt {result['prompt_id']}: {result['status']}")
    for node_id, output in result["outputs"].items():
        for text in output.get("text", []) if isinstance(output, dict) else []:
            if "#1" in text or "overall" in text:  # Rank Select's ranking
                print(f"ranking (node {node_id}):\n{text}")
    for manifest in result["manifests"]:
        kept = [f for f in manifest["frames"] if f["status"] != "failed"]
        print(f"storyboard {manifest['folder']}: {len(kept)}/{len(manifest['frames'])} frames kept, "
              f"failed clips {manifest['failed_clips'] or 'none'}")
        for frame in manifest["frames"]:
            best = f"{frame['best_score']:.1f}" if frame.get("best_score") is not None else "-"
            print(f"  {frame['name']:<16} {frame['status']:<16} best {best}")
    for path in result["files"]:
        print(f"saved {path}")
    if result["error"]:
        print(f"error: {json.dumps(result['error'])[:2000]}")


def batch_progress(report: dict[str, Any]) -> None:
    """One line on stderr each time an item of a batch ends."""
    done, total = report["progress"]["done"], report["progress"]["total"]
    sys.stderr.write(f"batch {report['id'][:8]}: {done}/{total} items done\n")
    sys.stderr.flush()


def batch(report: dict[str, Any]) -> None:
    print(f"batch {report['id']}: {report['status']} ({report['progress']['done']}/{report['progress']['total']})")
    print(f"  {'#':>3} {'tier':<10} {'count':>5} {'status':<10} {'time':>8} {'expected':>9} {'best':>6}  prompt")
    for item in report["items"]:
        time_s = f"{item['time_s']:.1f}s" if item["time_s"] is not None else "-"
        expected = f"~{item['expected_s']:.1f}s" if item.get("expected_s") is not None else "-"
        best = f"{item['best_score']:.1f}" if item["best_score"] is not None else "-"
        job = item.get("job") or {}
        worker = f"  [{job['worker']}, try {job['attempts']}]" if job.get("worker") else ""
        print(f"  {item['index']:>3} {item['tier']:<10} {item['count']:>5} {item['status']:<10} {time_s:>8} "
              f"{expected:>9} {best:>6}  {item['prompt'][:60]}{worker}")
        if item.get("error"):
            print(f"      error: {item['error'][:300]}")
    print("summary per tier:")
    for tier, entry in report["summary"].items():
        median = f"{entry['median_time_s']:.1f}s" if entry["median_time_s"] is not None else "-"
        mean = f"{entry['mean_best_score']:.1f}" if entry["mean_best_score"] is not None else "-"
        print(f"  {tier:<10} {entry['completed']}/{entry['items']} completed, median time {median}, "
              f"mean best score {mean}")


def job_progress(jobs: list[dict[str, Any]]) -> None:
    """One line on stderr: how many jobs of a run have ended, and where the running ones run."""
    done = sum(j["state"] not in ("queued", "running") for j in jobs)
    where = ", ".join(f"{j['position']}@{j['worker']}" for j in jobs if j["state"] == "running")
    sys.stderr.write(f"\r  {done}/{len(jobs)} jobs ended{'; running ' + where if where else ''}        ")
    sys.stderr.flush()


def distributed_run(report: dict[str, Any]) -> None:
    print(f"\n{report['pipeline']} {report['record_id']} on the job queue:")
    for j in report["jobs"]:
        took = f"{j['finished_at'] - j['started_at']:.1f}s" if j["finished_at"] and j["started_at"] else "-"
        print(f"  {j['position']:>3} {j['state']:<10} {j['worker'] or '-':<30} try {j['attempts']}  {took:>8}"
              + (f"  {j['error'][:200]}" if j["error"] and j["state"] != "completed" else ""))
    print(f"images in {report['shared']}:")
    for f in report["files"]:
        print(f"  {f}")


def record_diff(report: dict[str, Any]) -> None:
    same = "the same hash" if report["same_hash"] else "different hashes"
    print(f"{report['a']} vs {report['b']}: {same} ({report['status']['a']} / {report['status']['b']})")
    for section in ("parameters", "prompt", "prompt_versions", "models", "seeds", "graph", "outputs"):
        lines = report[section]
        print(f"{section}: " + ("same" if not lines else ""))
        for line in lines[:60]:
            print(f"    {line}")
        if len(lines) > 60:
            print(f"    … {len(lines) - 60} more")


def replayed(record: dict[str, Any]) -> None:
    same = "the same hash" if record.get("same_hash") else "a DIFFERENT hash"
    print(f"replay of {record.get('replay_of')}: record {record['id']}, {record['status']}, {same} "
          f"({record['repro_hash'][:16]}…)")


def regress(report: dict[str, Any]) -> None:
    """Each fixture's status; for a changed one, what changed, key path by key path."""
    for f in report["fixtures"]:
        print(f"{f['status']:<8} {f['name']}" + (f"  {f['error']}" if f["error"] else ""))
        for line in f["diff"]:
            print(f"    {line}")
    failed = report["failed"]
    if failed and not report["update"]:
        print(f"{len(failed)} fixture(s) differ from their expectations: if the change is meant, run "
              f"`atelier regress --update` and commit the fixtures")
    else:
        print(f"{len(report['fixtures'])} fixture(s): " + ("expectations written" if report["update"] else "all same"))


def workers(report: dict[str, Any]) -> None:
    """The scale-out workers and the job queue."""
    rows = report["workers"]
    print(f"{len(rows)} worker(s); a worker silent for {report['stale_after_s']:g} s is lost")
    print(f"  {'name':<36} {'state':<20} {'heartbeat':>10} {'done':>5} {'failed':>6}  {'current job':<32} comfyui")
    for w in rows:
        print(f"  {w['name'][:36]:<36} {w['state']:<20} {w['seconds_since_heartbeat']:>9.1f}s {w['jobs_done']:>5} "
              f"{w['failures']:>6}  {(w['current_job'] or '-'):<32} {w['comfy_url']}")
        if w["message"] and w["state"] != "ready":
            print(f"      {w['message'][:300]}")
    queue = report["queue"]
    print("queue: " + (", ".join(f"{k} {v}" for k, v in sorted(queue.items())) or "empty"))


def progress_bar(event: str, data: dict[str, Any]) -> None:
    """A one-line progress bar on stderr from ComfyUI's events."""
    if event == "progress":
        value, total = int(data.get("value", 0)), max(1, int(data.get("max", 1)))
        filled = int(30 * value / total)
        sys.stderr.write(f"\r  [{'#' * filled}{'.' * (30 - filled)}] {value}/{total}  node {data.get('node')}   ")
    elif event == "executing" and data.get("node"):
        sys.stderr.write(f"\r  running node {data['node']:<40}")
    elif event in ("execution_success", "execution_error", "execution_interrupted"):
        sys.stderr.write("\n")
    sys.stderr.flush()


def loras(view: dict[str, Any]) -> None:
    print(f"{view['count']} LoRA(s) in {view['files']} file(s); {view['rebuilt']} card(s) rebuilt in "
          f"{view['seconds']:.2f} s")
    for card in view["cards"]:
        fam = card["family"]
        variant = f"/{fam['variant']}" if fam["variant"] else ""
        print(f"  {card['name']}  [{fam['family']}{variant} {fam['confidence']:.2f} by {fam['source']}]  "
              f"{card['kind']}, strength {card['strength']:g}  id {card['id']}")
        if fam["evidence"]:
            print(f"    evidence: {fam['evidence'][0]}")
        if card["triggers"]:
            print(f"    triggers: {', '.join(card['triggers'][:5])}")
        for note in card["notes"]:
            print(f"    note: {note}")
    for problem in view["problems"]:
        print(f"  problem: {problem['name']}: {problem['reason']}")


def analysis(result: dict[str, Any]) -> None:
    print(result["summary"])
    print(f"  subjects:     {', '.join(result['subjects']) or '-'}")
    print(f"  style:        {result['style']} ({', '.join(result['style_terms']) or 'no style words'})")
    print(f"  content type: {result['content_type']} ({', '.join(result['content_terms']) or 'default'})")
    print(f"  lighting:     {', '.join(result['lighting']) or '-'}")
    print(f"  mood:         {', '.join(result['mood']) or '-'}")
    print(f"  complexity:   {result['complexity']} ({result['complexity_points']} points: "
          f"{', '.join(result['complexity_features']) or 'one plain subject'})")
    for note in result["notes"]:
        print(f"  note: {note}")


def lora_recommendations(result: dict[str, Any]) -> None:
    print(f"{result['analysis']}")
    print(f"checkpoint family {result['family']}: LoRAs of family {result['lora_family']}; "
          f"{result['considered']} in the library")
    if not result["loras"]:
        print("  no LoRA matched")
    for rec in result["loras"]:
        print(f"  {rec['name']} @{rec['strength']:g}  score {rec['score']:.2f}, confidence {rec['confidence']:.2f}")
        print(f"    {rec['reason']}")
        if rec["triggers"]:
            print(f"    adds: {', '.join(rec['triggers'])}")
    for item in result["filtered"][:10]:
        print(f"  not used: {item['name']}: {item['reason']}")


def generated(result: dict[str, Any]) -> None:
    if not result["accepted"]:
        print("not generated: the recommendation was not accepted")
        return
    for image in result["images"]:
        loras = ", ".join(image["loras"]) or "no LoRA"
        print(f"{image['file']}  seed {image['seed']}, {image['tier']}, {image['steps']} steps, cfg {image['cfg']:g}, "
              f"{image['size']}, {loras}, {image['time_s']:.2f} s  (record {image['id']})")
    if result["images"]:
        print(f"  why: {result['images'][0]['summary']}")
