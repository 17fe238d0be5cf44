#!/usr/bin/python3
"""make experiment: the paper's comparison (docs/method.md Tables 1-4) on the phantom benchmark.

usage: scripts/experiment.py [CONFIG.json] [--bin build/mkdseg] [--only-report | --from-results RESULTS.json]

Runs `mkdseg train` and `mkdseg eval` for every direction, fold, seed and method of the config
(experiments/cpu.json by default), in parallel, skipping runs whose results exist,
evaluating, without training again, runs whose training had finished and resuming unfinished
trainings from their checkpoints (so an interrupted experiment continues), then writes docs/results.json and docs/results.md. --from-results writes only
results.md again, from the runs of an existing results.json.
Only the standard library: it runs with Debian's /usr/bin/python3 or any python3.
"""
import concurrent.futures as cf
import json, os, platform, shutil, statistics, subprocess, sys, time

STRUCT = ["MYO", "LA", "LV", "RA", "RV", "AA", "PA"]
PAPER = {  # docs/method.md: mean Dice over the 7 structures
    "ct": {"baseline": 0.8706, "finetune": 0.8769, "joint": 0.8743, "mkd/syn": 0.8849, "mkd/real": 0.8947,
           "mkd/ensemble": 0.9012, "mkd-no-iam/syn": 0.8730, "mkd-no-iam/real": 0.8745, "mkd-no-iam/ensemble": 0.8829,
           "mkd-no-kd-s2r/syn": 0.8825, "mkd-no-kd-s2r/real": 0.8742, "mkd-no-kd-s2r/ensemble": 0.8879,
           "mkd-no-kd-r2s/syn": 0.5785, "mkd-no-kd-r2s/real": 0.8904, "mkd-no-kd-r2s/ensemble": 0.7937},
    "mr": {"baseline": 0.8243, "finetune": 0.8217, "joint": 0.8306, "mkd/syn": 0.8382, "mkd/real": 0.8466,
           "mkd/ensemble": 0.8517},
    "amount": {5: 0.8916, 10: 0.8945, 20: 0.9012},
}


def split_method(name):
    """"mkd@oracle" -> ("mkd", "oracle"): a method with its alignment module (iam); plain "mkd" -> ("mkd", None)."""
    m, _, iam = name.partition("@")
    return m, iam or None


def variant(cfg, name):
    """A recipe variant of the config's "variants" ({"mkd.warmup": {"method": "mkd", "train": {...}}}): the
    method (with its iam) it runs and the settings it adds to the config's "train"; a plain method adds none."""
    v = cfg.get("variants", {}).get(name)
    return (v["method"], v.get("train", {})) if v else (name, {})


def ensure_oracle(cfg, binary):
    """The oracle data of the phantom benchmark (docs/phantom.md): every MR training volume rendered as CT
    (`mkdseg phantom --paired-ct`, the same subject on the same grid, fresh noise), and `score_volumes`
    held-out MR volumes (seeds 4001...) with their CT renderings, on which the translation is scored.
    The MR image written alongside is compared with the benchmark's file, so a pairing cannot drift."""
    ph = cfg["phantom_dir"]
    od, sd = os.path.join(ph, "mr_oracle"), os.path.join(ph, "mr_score")
    os.makedirs(od, exist_ok=True)
    os.makedirs(sd, exist_ok=True)
    for img, _ in pairs(os.path.join(ph, "mr"), "mr_train"):
        name = os.path.basename(img)[:-len("_image.nii.gz")]
        out = os.path.join(od, name + "_ct.nii.gz")
        if os.path.exists(out):
            continue
        seed = 1000 + int(name[-2:])
        tmp = os.path.join(od, name + "_check.nii.gz")
        subprocess.run([binary, "phantom", "--modality", "mr", "--seed", str(seed), "--image", tmp, "--paired-ct", out],
                       check=True, capture_output=True)
        if open(tmp, "rb").read() != open(img, "rb").read():
            raise SystemExit("experiment: %s is not phantom seed %d: the oracle pairing would be wrong" % (img, seed))
        os.remove(tmp)
    for i in range(1, cfg.get("score_volumes", 4) + 1):
        base = os.path.join(sd, "mr_score_40%02d" % i)
        if not os.path.exists(base + "_ct.nii.gz"):
            subprocess.run([binary, "phantom", "--modality", "mr", "--seed", str(4000 + i), "--image", base + "_image.nii.gz",
                            "--label", base + "_label.nii.gz", "--paired-ct", base + "_ct.nii.gz"], check=True, capture_output=True)


def oracle_of(mr_image, cfg):
    name = os.path.basename(mr_image)[:-len("_image.nii.gz")]
    return os.path.join(cfg["phantom_dir"], "mr_oracle", name + "_ct.nii.gz")


def score_set(cfg):
    d = os.path.join(cfg["phantom_dir"], "mr_score")
    return [(os.path.join(d, "mr_score_40%02d_image.nii.gz" % i), os.path.join(d, "mr_score_40%02d_label.nii.gz" % i),
             os.path.join(d, "mr_score_40%02d_ct.nii.gz" % i)) for i in range(1, cfg.get("score_volumes", 4) + 1)]


def pairs(d, prefix):
    names = sorted(f[:-len("_image.nii.gz")] for f in os.listdir(d) if f.startswith(prefix) and f.endswith("_image.nii.gz"))
    return [(os.path.join(d, n + "_image.nii.gz"), os.path.join(d, n + "_label.nii.gz")) for n in names]


def plan(cfg):
    ph = cfg["phantom_dir"]
    ct, mr = pairs(os.path.join(ph, "ct"), "ct_train"), pairs(os.path.join(ph, "mr"), "mr_train")
    runs = []
    directions = [("ct", ct, "mr", mr)] + ([("mr", mr, "ct", ct)] if cfg.get("reverse") else [])
    for tmod, tvols, amod, avols in directions:
        half = len(tvols) // cfg["folds"]
        for fold in range(cfg["folds"]):
            own = tvols[fold * half:(fold + 1) * half]
            other = [v for i, v in enumerate(tvols) if not (fold * half <= i < (fold + 1) * half)]
            train, test = own[:cfg["target_per_fold"]], other[:cfg["test_per_fold"]]
            # validation: the last volumes of the fold's own half, in no fold's training or test set
            val = own[len(own) - cfg.get("val_per_fold", 0):] if cfg.get("val_per_fold") else []
            # main_seeds: the seeds of the main CT study (Tables 1-2), where the differences are
            # smallest; every other study runs `seeds`
            main_seeds = cfg.get("main_seeds", cfg["seeds"]) if tmod == "ct" else cfg["seeds"]
            for seed in sorted(set(cfg["seeds"]) | set(main_seeds)):
                methods = cfg["methods"] if tmod == "ct" else ["baseline", "finetune", "joint", "mkd"]
                # the ablations (Table 2) and the IAM grid (M@IAM) run `seeds`; Table 1's methods and the
                # grid's rows named in "main_grid" run main_seeds
                wide = set(cfg.get("main_grid", []))
                for m in [m for m in methods if not (m.startswith("mkd-") or "@" in m) or m in wide
                          or seed in cfg["seeds"]] if seed in main_seeds else []:
                    runs.append(dict(study="main", dir=tmod, amod=amod, fold=fold, seed=seed, method=m,
                                     target=train, assistant=avols, test=test, val=val, n_assist=len(avols)))
                if tmod == "ct" and seed in cfg["seeds"]:
                    for n in cfg.get("assistant_amounts", []):
                        if n == len(avols) and seed in main_seeds:
                            continue  # the main study's mkd run is this point
                        runs.append(dict(study="amount", dir=tmod, amod=amod, fold=fold, seed=seed, method="mkd",
                                         target=train, assistant=avols[:n], test=test, val=val, n_assist=n))
    # the longer budgets ("budgets": {"iters": [3000, 6000], "methods": [...], "seeds": [1]}): each point
    # continues the CT main-study run of the same fold, seed and method (or the previous point) from its final
    # checkpoint, so 1200 -> 3000 -> 6000 are checkpoints of one training; the rates decay per epoch, never by
    # the total, so a continued run is the run with the longer budget. Methods whose schedule depends on the
    # total (finetune: its switch to the target is a fraction of it) train afresh at each point.
    b = cfg.get("budgets")
    if b:
        mains = {(r["fold"], r["seed"], r["method"]): r for r in runs if r["study"] == "main" and r["dir"] == "ct"}
        for (fold, seed, m), src in sorted(mains.items()):
            if seed not in b.get("seeds", cfg["seeds"]) or m not in b["methods"]:
                continue
            prev = src
            for n_it in b["iters"]:
                r = dict(src, study="budget", iters=n_it, extend=None if m in FRESH_AT_BUDGET else prev)
                runs.append(r)
                prev = r
    for r in runs:
        r["name"] = "%s-%s-f%d-s%d-%s-a%d" % (r["study"], r["dir"], r["fold"], r["seed"], r["method"].replace("@", "+"),
                                              r["n_assist"]) + ("-i%d" % r["iters"] if r.get("iters") else "")
    # the runs the report needs most first (the config's method order), so a pilot cut short has them
    # ("order": "seed": every method of a seed before the next seed, so a run cut short keeps whole pairs)
    order = {m: i for i, m in enumerate(cfg["methods"])}
    by_seed = cfg.get("order") == "seed"
    # Table 1 and the IAM grid, the first longer budget, the KD ablations (Table 2), the amount study,
    # main MR, then the longer budgets after the first: what the claims rest on first, so a run cut
    # short keeps it (a budget point waits for the run it continues, which is always queued before it)
    first_b = min(b["iters"]) if b else 0

    def stage(r):
        if r["study"] == "main":
            return (2 if r["method"] in ABLATIONS else 0) if r["dir"] == "ct" else 4
        if r["study"] == "budget":
            return 1 if r["iters"] == first_b else 5
        return 3
    runs.sort(key=lambda r: (stage(r), r.get("iters", 0), r["seed"] if by_seed else 0,
                             order.get(r["method"], 99), r["seed"], r["fold"]))
    return runs


FRESH_AT_BUDGET = ("finetune",)
# the distillation ablations of Table 2 (mkd-no-iam is also the IAM grid's mkd@identity: it runs with the grid)
ABLATIONS = ("mkd-no-kd-s2r", "mkd-no-kd-r2s")


def execute(run, cfg, binary):
    out = os.path.join(cfg["out_dir"], run["name"])
    os.makedirs(out, exist_ok=True)
    res_path = os.path.join(out, "result.json")
    if os.path.exists(res_path):
        return json.load(open(res_path))
    model = os.path.join(out, "model.safetensors")
    t = cfg["train"]
    log_path = os.path.join(out, "train.log")
    if run.get("extend") and not os.path.exists(model + ".ckpt") and not (os.path.exists(model) and finished(log_path)):
        # a longer budget: continue the run it extends from that run's final checkpoint
        src = run["extend"]
        DONE[src["name"]].result()   # queued before this one, so running or done
        shutil.copyfile(os.path.join(cfg["out_dir"], src["name"], "model.safetensors.ckpt"), model + ".ckpt")
    if os.path.exists(model) and finished(log_path):
        # the training finished before the experiment was interrupted: evaluate it
        train_s = None
    else:
        train_s = train(run, cfg, binary, model, log_path)
    members = ["ensemble", "syn", "real"] if variant(cfg, run["method"])[0].startswith("mkd") else ["ensemble"]

    def evaluate(vols, members):
        out = {}
        for mem in members:
            ecmd = [binary, "eval", "--model", model, "--json", "--member", mem, "--threads", str(t.get("threads", 1)),
                    "--images", ",".join(p[0] for p in vols), "--labels", ",".join(p[1] for p in vols)]
            out[mem] = json.loads(subprocess.run(ecmd, check=True, capture_output=True, text=True).stdout)["mean"]
        return out
    res = {k: run[k] for k in ("study", "dir", "fold", "seed", "method", "n_assist", "name")}
    res["iters"] = run.get("iters") or t.get("iters")
    res.update(train_s=round(train_s, 1) if train_s is not None else None, eval=evaluate(run["test"], members))
    if run.get("val"):   # for choosing settings: the model the method ships (the ensemble)
        res["val"] = evaluate(run["val"], members)
    res["translation"] = translation_scores(log_path)
    res["gan_end"] = gan_terms(log_path)
    json.dump(res, open(res_path, "w"), indent=1)
    # the final checkpoint stays (a few MB): a longer budget continues from it
    return res


DONE = {}   # run name -> its future, for the budget points that wait on the run they continue


def translation_scores(log_path):
    """The translation scores `mkdseg train` printed in its closing line ([] when none were taken)."""
    try:
        return json.loads(open(log_path).read().strip().splitlines()[-1]).get("translation", [])
    except (OSError, IndexError, ValueError):
        return []


GAN_TERMS = ["g_a2t_adv", "g_a2t_seg", "cyc_a", "cyc_t", "d_t_real", "d_t_fake", "d_a_real", "d_a_fake"]


def gan_terms(log_path, last=50):
    """The GAN's loss terms (unweighted) averaged over the last `last` progress lines of train.log: who wins
    at the end (D_t near 0 on both real and fake: the discriminator separates them). {} without them."""
    rows = []
    try:
        for line in open(log_path):
            if line.startswith('{"event":"progress"'):
                rows.append(json.loads(line))
    except (OSError, ValueError):
        return {}
    rows = rows[-last:]
    return {k: round(statistics.fmean(r[k] for r in rows if k in r), 4) for k in GAN_TERMS
            if any(k in r for r in rows)}


def finished(log_path):
    """Whether train.log ends with `mkdseg train`'s closing summary line (the model is complete)."""
    try:
        last = open(log_path).read().strip().splitlines()[-1]
        return "model" in json.loads(last)
    except (OSError, IndexError, ValueError):
        return False


def train(run, cfg, binary, model, log_path):
    base, extra = variant(cfg, run["method"])
    t = dict(cfg["train"], **extra)
    if run.get("iters"):
        t["iters"] = run["iters"]
    method, iam = split_method(base)
    cmd = [binary, "train", "--method", method, "--out", model, "--json", "--seed", str(run["seed"]),
           "--target-modality", run["dir"], "--assistant-modality", run["amod"],
           "--target-images", ",".join(p[0] for p in run["target"]), "--target-labels", ",".join(p[1] for p in run["target"])]
    if method != "baseline":
        cmd += ["--assistant-images", ",".join(p[0] for p in run["assistant"]),
                "--assistant-labels", ",".join(p[1] for p in run["assistant"])]
    for k, v in t.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    if iam:
        cmd += ["--iam", iam]
    if iam == "oracle":
        if run["amod"] != "mr":
            raise SystemExit("experiment: the oracle renders MR subjects as CT only (the CT-target direction)")
        cmd += ["--assistant-oracle", ",".join(oracle_of(p[0], cfg) for p in run["assistant"])]
    if cfg.get("score_every") and run["amod"] == "mr" and method != "baseline":
        sc = score_set(cfg)
        cmd += ["--score-every", str(cfg["score_every"]), "--score-images", ",".join(p[0] for p in sc),
                "--score-labels", ",".join(p[1] for p in sc), "--score-oracle", ",".join(p[2] for p in sc)]
    # an interrupted training continues from its checkpoint (bit-for-bit on the CPU with the same
    # threads and a forced MKDSEG_CONV_PATH; with the per-process timed choice of convolution
    # kernels, up to float rounding; the checkpoint keeps the translation scores taken so far)
    resume = os.path.exists(model + ".ckpt")
    if resume:
        cmd += ["--resume"]
    t0 = time.time()
    with open(log_path, "a" if resume else "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return time.time() - t0


def agg(vals):
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}


def fmt(a, digits=4):
    return "–" if not a else ("%.*f ± %.*f (%d)" % (digits, a["mean"], digits, a["sd"], a["n"]))


def summarize(results):
    """{"study|dir|n_assist|method[/member]": mean/sd/n of Dice, ASSD and per-structure Dice}"""
    rows = {}
    for r in results:
        for mem, ev in r["eval"].items():
            if r["method"].startswith("mkd"):
                key = "%s/%s" % (r["method"], {"ensemble": "ensemble", "syn": "syn", "real": "real"}[mem])
            else:
                key = r["method"]
            rows.setdefault((r["study"], r["dir"], r["n_assist"], key), []).append(ev)
    table = {}
    for (study, d, n, key), evs in rows.items():
        table["%s|%s|%d|%s" % (study, d, n, key)] = {
            "dice": agg([e["dice"] for e in evs]), "assd": agg([e["assd"] for e in evs]),
            "structures": {s: agg([e["structures"][s]["dice"] for e in evs]) for s in STRUCT}}
    return table


# two-sided 95% quantiles of Student's t by degrees of freedom (beyond 30: the normal's)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086,
        25: 2.060, 30: 2.042}


def t975(df):
    return T975.get(df) or T975[max(k for k in T975 if k <= df)] if df <= 30 else 1.96


def run_value(r, key, which="eval"):
    """Dice of run r for a table key ("mkd@oracle/syn", "joint"), from its test ("eval") or validation ("val") volumes."""
    method, _, member = key.partition("/")
    if r["method"] != ALIAS.get(method, method) and r["method"] != method or which not in r \
            or (member or "ensemble") not in r[which]:
        return None
    return r[which][member or "ensemble"]["dice"]


# the same training under two names: mkd with the identity IAM is the paper's mkd-no-iam ablation
ALIAS = {"mkd@identity": "mkd-no-iam"}


def paired(results, ka, kb, which="eval"):
    """The differences a - b over the CT main study's runs with the same fold and seed: mean, 95% t-interval,
    number of pairs and how many a wins; None without pairs."""
    main = [r for r in results if r["study"] == "main" and r["dir"] == "ct"]
    b = {(r["fold"], r["seed"]): run_value(r, kb, which) for r in main if run_value(r, kb, which) is not None}
    d = [run_value(r, ka, which) - b[(r["fold"], r["seed"])] for r in main
         if run_value(r, ka, which) is not None and (r["fold"], r["seed"]) in b]
    if not d:
        return None
    m = statistics.fmean(d)
    h = t975(len(d) - 1) * statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
    return {"mean": m, "lo": m - h, "hi": m + h, "n": len(d), "wins": sum(x > 0 for x in d)}


def fmt_paired(p):
    if not p:
        return "–"
    if p["n"] < 2:
        return "%+.4f (1 pair)" % p["mean"]
    return "%+.4f [%+.4f, %+.4f] (%d pairs, %d wins)" % (p["mean"], p["lo"], p["hi"], p["n"], p["wins"])


def last_score(results, method, field):
    """The last translation score of a method's CT main-study runs: mean over runs (None without scores)."""
    v = [r["translation"][-1][field] for r in results if r["study"] == "main" and r["dir"] == "ct" and r["method"] == method
         and r.get("translation") and r["translation"][-1].get(field) is not None]
    return agg(v)


# the comparisons that say where MKD's gain or loss comes from (test and validation volumes, paired)
GRID_PAIRS = [
    ("mkd@oracle/ensemble", "joint"), ("mkd@oracle/ensemble", "mkd/ensemble"), ("mkd@oracle/ensemble", "joint@oracle"),
    ("mkd@oracle/ensemble", "mkd@oracle/real"), ("mkd@oracle/syn", "mkd@identity/syn"), ("mkd/syn", "mkd@identity/syn"),
    ("mkd@histmatch/syn", "mkd@identity/syn"), ("mkd@frozen/syn", "mkd@identity/syn"), ("mkd@identity/ensemble", "joint"),
    ("mkd/ensemble", "joint"), ("joint-dsbn", "joint"), ("mkd/ensemble", "joint-dsbn"), ("mkd@oracle/ensemble", "joint-dsbn"),
    ("joint@oracle", "joint"), ("joint@histmatch", "joint"), ("joint@frozen", "joint"),
    ("mkd@frozen/ensemble", "joint@frozen"), ("mkd/real", "baseline"),
]


def grid_section(results, L):
    """The IAM grid: every alignment module under mkd (S_syn, S_real, ensemble) and under one segmentor,
    with the translation scores, then the paired differences."""
    ms = []
    for r in results:
        if r["study"] == "main" and r["dir"] == "ct" and r["method"] not in ms:
            ms.append(r["method"])
    if not any("@" in m or m == "joint-dsbn" for m in ms):
        return
    L.extend(["## The alignment module (IAM) grid, CT target", "",
              "Test and validation Dice: mean ± sd (runs). `mkd` is `mkd@cyclegan` (the paper's IAM). Label score: Dice of "
              "S_real (one segmentor: the segmentor) on T(x^a) of the held-out MR volumes against their labels, at the last "
              "iteration; fidelity: mean |T(x^a) - the oracle CT rendering| in normalised units ([-1, 1]).", "",
              "| run | S_syn | S_real | ensemble (test) | ensemble (validation) | label score | fidelity MAE |",
              "|---|---|---|---|---|---|---|"])
    for m in ms:
        mk = m.startswith("mkd")
        def col(member, which="eval"):
            return fmt(agg([v for v in (run_value(r, m + "/" + member, which) for r in results
                                         if r["study"] == "main" and r["dir"] == "ct") if v is not None]))
        L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            m, col("syn") if mk else "–", col("real") if mk else "–", col("ensemble"), col("ensemble", "val"),
            fmt(last_score(results, m, "label_dice")), fmt(last_score(results, m, "fidelity_mae"))))
    L.extend(["", "Paired differences a − b (same fold and seed): mean [95% t-interval] (pairs, wins of a).", "",
              "| a | b | test | validation |", "|---|---|---|---|"])
    for a, b in GRID_PAIRS:
        pt = paired(results, a, b)
        if pt:
            L.append("| %s | %s | %s | %s |" % (a, b, fmt_paired(pt), fmt_paired(paired(results, a, b, "val"))))
    L.append("")


def budget_section(results, cfg, L):
    """The longer budgets: each method's Dice at every checkpoint of one training (the CT main-study run at the
    config's iterations, continued to each budget), test and validation, with the paired differences of mkd
    against the single-segmentor methods at each point."""
    b = cfg.get("budgets")
    if not b:
        return
    base = cfg["train"]["iters"]
    pts = [base] + list(b["iters"])
    seeds = b.get("seeds", cfg["seeds"])

    def at(n_it):   # the runs of the budget study's seeds at n_it iterations (the main study's at the base)
        if n_it == base:
            return [r for r in results if r["study"] == "main" and r["dir"] == "ct" and r["seed"] in seeds
                    and r["method"] in b["methods"]]
        return [r for r in results if r["study"] == "budget" and r.get("iters") == n_it]
    if not any(at(n) for n in b["iters"]):
        return
    keys = [m + "/" + s if m.startswith("mkd") else m for m in b["methods"]
            for s in (("syn", "real", "ensemble") if m.startswith("mkd") else ("",))]
    L.extend(["## Table 5: longer budgets, CT target, seeds %s" % seeds, "",
              "Each column is a checkpoint of one training per fold and seed: the main study's %d-iteration run, "
              "continued from its final checkpoint (the rates decay per epoch, not by the total, so the continued run is "
              "the longer run, up to the float rounding of each process's timed choice of convolution kernels). Test Dice: mean ± sd (runs); validation in brackets." % base, "",
              "| method | " + " | ".join("%d iterations" % n for n in pts) + " |", "|---|" + "---|" * len(pts)])
    for k in keys:
        cells = []
        for n in pts:
            te = agg([v for v in (run_value(r, k) for r in at(n)) if v is not None])
            va = agg([v for v in (run_value(r, k, "val") for r in at(n)) if v is not None])
            cells.append("%s [%s]" % (fmt(te), fmt(va, 3) if va else "–") if te else "–")
        L.append("| %s | %s |" % (k, " | ".join(cells)))
    L.extend(["", "Paired a − b at each budget (same fold and seed), test: mean [95% t-interval] (pairs, wins of a).", "",
              "| a | b | " + " | ".join("%d" % n for n in pts) + " |", "|---|---|" + "---|" * len(pts)])
    for a_, b_ in [("mkd/ensemble", m) for m in b["methods"] if not m.startswith("mkd")] + [("joint-dsbn", "joint")]:
        if a_.partition("/")[0] not in b["methods"] or b_ not in b["methods"]:
            continue
        cells = []
        for n in pts:
            rs = [dict(r, study="main", dir="ct") for r in at(n)]
            cells.append(fmt_paired(paired(rs, a_, b_)))
        L.append("| %s | %s | %s |" % (a_, b_, " | ".join(cells)))
    L.append("")


def recipe_section(results, cfg, L):
    """The translation recipe study: each variant of the config's "variants" (and the paper's recipe, the plain
    method it varies) with its Dice, its translation scores and the GAN's terms at the end, then each variant's
    paired difference against the paper's recipe on the validation volumes (where the recipe is chosen) and on
    the test volumes."""
    vs = cfg.get("variants")
    if not vs:
        return
    main = [r for r in results if r["study"] == "main" and r["dir"] == "ct"]
    refs = []
    for v in vs.values():
        if v["method"] not in refs:
            refs.append(v["method"])
    rows = refs + list(vs)
    L.extend(["## The translation recipe study, CT target", "",
              "Each variant is its method with these settings added to the config's (the paper's recipe: none):", ""])
    for name, v in vs.items():
        L.append("- `%s`: `%s` with `%s`" % (name, v["method"], json.dumps(v.get("train", {}))))
    L.extend(["", "Dice: mean ± sd (runs). Label score and fidelity as in the IAM grid, at the last iteration (the "
              "trajectory: the mean label score at each scoring iteration). GAN terms: mean over the last 50 "
              "iterations, unweighted (least squares; D near 0 on both real and fake: D separates them).", "",
              "| recipe | S_syn | S_real | ensemble (test) | ensemble (validation) | label score | fidelity MAE | "
              "label score by iteration | g_a2t_adv | d_t_real / d_t_fake |", "|---|---|---|---|---|---|---|---|---|---|"])
    for m in rows:
        rs = [r for r in main if r["method"] == m]
        if not rs:
            continue
        def col(member, which="eval"):
            return fmt(agg([v for v in (run_value(r, m + "/" + member, which) for r in rs) if v is not None]))
        traj = {}
        for r in rs:
            for t in r.get("translation") or []:
                traj.setdefault(t["iter"], []).append(t["label_dice"])
        gan = [r.get("gan_end") or {} for r in rs]
        def g(k):
            v = [x[k] for x in gan if k in x]
            return "%.3f" % statistics.fmean(v) if v else "–"
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |" % (
            m, col("syn"), col("real"), col("ensemble"), col("ensemble", "val"),
            fmt(last_score(results, m, "label_dice")), fmt(last_score(results, m, "fidelity_mae")),
            " / ".join("%.2f" % statistics.fmean(traj[i]) for i in sorted(traj)) or "–",
            g("g_a2t_adv"), g("d_t_real"), g("d_t_fake")))
    L.extend(["", "Paired differences variant − the paper's recipe (same fold and seed): mean [95% t-interval] "
              "(pairs, wins of the variant). The recipe is chosen on the validation column.", "",
              "| variant | member | validation | test |", "|---|---|---|---|"])
    for name, v in vs.items():
        for mem in ("ensemble", "syn", "real"):
            a, b = name + "/" + mem, v["method"] + "/" + mem
            pv, pt = paired(results, a, b, "val"), paired(results, a, b)
            if pv or pt:
                L.append("| %s | %s | %s | %s |" % (name, mem, fmt_paired(pv), fmt_paired(pt)))
    L.append("")


def compare_section(results, cfg, L):
    """The config's "compare" pairs [a, b] (table keys such as "mkd.idt/ensemble", "joint"): a − b paired by seed
    and fold, on the test and the validation volumes, with the runs' Dice of each side."""
    if not cfg.get("compare"):
        return
    main = [r for r in results if r["study"] == "main" and r["dir"] == "ct"]
    L.extend(["## Paired comparisons, CT target", "",
              "a − b over the runs with the same seed and fold: mean [95% t-interval] (pairs, wins of a); "
              "Dice of each side: mean ± sd (runs).", "",
              "| a | b | a (test) | b (test) | test | validation |", "|---|---|---|---|---|---|"])
    for a, b in cfg["compare"]:
        va = agg([v for v in (run_value(r, a) for r in main) if v is not None])
        vb = agg([v for v in (run_value(r, b) for r in main) if v is not None])
        L.append("| %s | %s | %s | %s | %s | %s |" % (a, b, fmt(va), fmt(vb), fmt_paired(paired(results, a, b)),
                                                     fmt_paired(paired(results, a, b, "val"))))
    L.append("")


def report(results, cfg, cfg_path, elapsed, write_json=True):
    out_dir = cfg.get("report_dir", "docs")
    table = summarize(results)
    # the ablations ran `seeds` only: Table 2 and the ablation claims compare mkd on those seeds
    table_s = summarize([r for r in results if r["seed"] in cfg["seeds"]])
    doc = {"config": cfg, "config_file": cfg_path, "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "elapsed_s": round(elapsed), "runs": results, "summary": table,
           "summary_seeds": table_s}
    os.makedirs(out_dir, exist_ok=True)
    if write_json:
        json.dump(doc, open(os.path.join(out_dir, "results.json"), "w"), indent=1)

    L = ["# Results: the paper's comparison on the phantom benchmark", "",
         "Generated by `make experiment` (`scripts/experiment.py %s`) from docs/results.json; do not edit by hand." % cfg_path, "",
         "Data: the fixed phantom benchmark (`make phantom-data`, docs/phantom.md), not MM-WHS. Protocol: the 20 training "
         "volumes of the target modality in %d folds; each fold trains on %d labelled target volumes of its half and all "
         "assistant volumes, and is tested on %d volumes of the other half; seeds %s (Table 1: %s); every method has the same segmentor, "
         "the same %d iterations and the same settings (`%s`). Values: mean ± sd (number of runs) over folds x seeds of "
         "the per-run mean over test volumes. Paper: docs/method.md (MM-WHS, 10 CT per fold, a paper-size network)."
         % (cfg["folds"], cfg["target_per_fold"], cfg["test_per_fold"], cfg["seeds"], cfg.get("main_seeds", cfg["seeds"]),
            cfg["train"].get("iters") or cfg["train"].get("epochs", 20) * cfg["train"].get("iters_per_epoch", 500),
            json.dumps(cfg["train"])), "",
         "Machine: %s, %d CPUs, %d runs at a time; training time summed over the %d runs: %.0f min (each run's "
         "`train_s`; runs that shared the machine with other work took longer)."
         % (doc["machine"], doc["cpus"], cfg.get("parallel", 1), len(results),
            sum(r.get("train_s") or 0 for r in results) / 60), ""]

    def section(title, d, study, n, keys, paper, tab=table):
        L.extend(["## " + title, "", "| method | mean Dice | paper | " + " | ".join(STRUCT) + " | ASSD (mm) |",
                  "|---|---|---|" + "---|" * len(STRUCT) + "---|"])
        for k in keys:
            a = tab.get("%s|%s|%d|%s" % (study, d, n, k))
            if not a:
                continue
            p = paper.get(k)
            L.append("| %s | %s | %s | %s | %s |" % (k, fmt(a["dice"]), "%.4f" % p if p else "–",
                                                    " | ".join("%.3f" % a["structures"][s]["mean"] for s in STRUCT),
                                                    fmt(a["assd"], 2)))
        L.append("")

    n_all = max([r["n_assist"] for r in results if r["dir"] == "ct" and r["study"] == "main"] or [0])
    main_keys = ["baseline", "finetune", "joint", "joint-dsbn", "mkd/syn", "mkd/real", "mkd/ensemble"]
    section("Table 1: CT target, MR assistant", "ct", "main", n_all, main_keys, PAPER["ct"])
    abl = [m + "/" + s for m in ("mkd", "mkd-no-iam", "mkd-no-kd-s2r", "mkd-no-kd-r2s") for s in ("syn", "real", "ensemble")]
    section("Table 2: ablations (S_syn / S_real / ensemble), seeds %s" % cfg["seeds"], "ct", "main", n_all, abl,
            PAPER["ct"], table_s)
    L.extend(["## Table 3: amount of assistant data (mkd ensemble)", "", "| MR volumes | mean Dice (runs) | paper |", "|---|---|---|"])
    def amount(n):   # the mkd ensemble with n MR volumes, over the amount study's seeds only
        return agg([r["eval"]["ensemble"]["dice"] for r in results if r["dir"] == "ct" and r["method"] == "mkd"
                    and r["study"] in ("main", "amount") and r["n_assist"] == n and r["seed"] in cfg["seeds"]])
    for n in sorted(set(cfg.get("assistant_amounts", []))):
        a = amount(n)
        L.append("| %d | %s | %s |" % (n, fmt(a) if a else "–", "%.4f" % PAPER["amount"].get(n, float("nan"))))
    L.append("")
    n_mr = max([r["n_assist"] for r in results if r["dir"] == "mr"] or [0])
    section("Table 4: MR target, CT assistant", "mr", "main", n_mr, main_keys, PAPER["mr"])
    grid_section(results, L)
    budget_section(results, cfg, L)
    recipe_section(results, cfg, L)
    compare_section(results, cfg, L)

    def m(k, d="ct", n=n_all, tab=table):
        a = tab.get("main|%s|%d|%s" % (d, n, k))
        return a["dice"] if a else None

    def ms(k):   # on the ablations' seeds
        return m(k, tab=table_s)
    # (claim, a, b, the keys of a and b for the paired difference on the CT main study, or None)
    claims = [("ensemble > S_real", m("mkd/ensemble"), m("mkd/real"), ("mkd/ensemble", "mkd/real")),
              ("S_real > baseline", m("mkd/real"), m("baseline"), ("mkd/real", "baseline")),
              ("MKD ensemble > joint training", m("mkd/ensemble"), m("joint"), ("mkd/ensemble", "joint")),
              ("MKD ensemble > joint-dsbn", m("mkd/ensemble"), m("joint-dsbn"), ("mkd/ensemble", "joint-dsbn")),
              ("MKD ensemble > fine-tuning", m("mkd/ensemble"), m("finetune"), ("mkd/ensemble", "finetune")),
              ("MKD ensemble > baseline", m("mkd/ensemble"), m("baseline"), ("mkd/ensemble", "baseline")),
              ("(MR target) ensemble > baseline", m("mkd/ensemble", "mr", n_mr), m("baseline", "mr", n_mr), None),
              ("IAM helps: mkd ensemble > mkd-no-iam ensemble", ms("mkd/ensemble"), ms("mkd-no-iam/ensemble"),
               ("mkd/ensemble", "mkd-no-iam/ensemble")),
              ("KD s->r helps: mkd ensemble > mkd-no-kd-s2r ensemble", ms("mkd/ensemble"), ms("mkd-no-kd-s2r/ensemble"),
               ("mkd/ensemble", "mkd-no-kd-s2r/ensemble")),
              ("KD r->s helps: mkd ensemble > mkd-no-kd-r2s ensemble", ms("mkd/ensemble"), ms("mkd-no-kd-r2s/ensemble"),
               ("mkd/ensemble", "mkd-no-kd-r2s/ensemble"))]
    amt = {n: amount(n) for n in sorted(set(cfg.get("assistant_amounts", [])))}
    ns = sorted(amt)
    for a_, b_ in zip(ns[1:], ns[:-1]):
        claims.append(("more assistant data: %d MR > %d MR" % (a_, b_), amt[a_], amt[b_], None))
    L.extend(["## The paper's claims on this data", "",
              "\"within the spread\": the difference is smaller than the larger of the two standard deviations "
              "over folds x seeds, so this run cannot rank the two. Paired difference: a − b over the runs with the same "
              "fold and seed, mean [95% t-interval] (pairs, wins of a); a claim holds when the interval lies above 0.", "",
              "| claim | ours | holds | paired difference (test) |", "|---|---|---|---|"])
    for c, a, b, keys in claims:
        if a is None or b is None:
            L.append("| %s | not run | – | – |" % c)
        else:
            verdict = "yes" if a["mean"] > b["mean"] else "no"
            if abs(a["mean"] - b["mean"]) < max(a["sd"], b["sd"]):
                verdict += " (within the spread)"
            L.append("| %s | %.4f vs %.4f | %s | %s |" % (c, a["mean"], b["mean"], verdict,
                                                          fmt_paired(paired(results, *keys)) if keys else "–"))
    L.append("")
    if cfg.get("notes") and os.path.exists(cfg["notes"]):   # the hand-written reading of the numbers
        L.extend(["## Discussion", "", "(from `%s`, written by hand after the run)" % cfg["notes"], "",
                  open(cfg["notes"]).read().strip(), ""])
    open(os.path.join(out_dir, "results.md"), "w").write("\n".join(L))


def main():
    args = sys.argv[1:]
    binary = "build/mkdseg"
    if "--bin" in args:
        i = args.index("--bin"); binary = args[i + 1]; del args[i:i + 2]
    from_json = None
    if "--from-results" in args:   # the report again from a results.json's runs (no result.json files needed)
        i = args.index("--from-results"); from_json = args[i + 1]; del args[i:i + 2]
    only = "--only-report" in args
    args = [a for a in args if a != "--only-report"]
    cfg_path = args[0] if args else "experiments/cpu.json"
    cfg = json.load(open(cfg_path))
    if from_json:
        doc = json.load(open(from_json))
        report(doc["runs"], cfg, cfg_path, doc.get("elapsed_s", 0), write_json=False)
        print("experiment: wrote %s/results.md from %s" % (cfg.get("report_dir", "docs"), from_json))
        return
    if not os.path.isdir(os.path.join(cfg["phantom_dir"], "ct")):
        subprocess.run(["make", "phantom-data", "PHANTOM_DIR=" + cfg["phantom_dir"]], check=True)
    runs = plan(cfg)
    if any(split_method(r["method"])[1] == "oracle" for r in runs) or cfg.get("score_every"):
        ensure_oracle(cfg, binary)
    t0 = time.time()
    results = []
    if only:
        for r in runs:
            p = os.path.join(cfg["out_dir"], r["name"], "result.json")
            if os.path.exists(p):
                results.append(json.load(open(p)))
    else:
        print("experiment: %d runs, %d at a time" % (len(runs), cfg.get("parallel", 1)), flush=True)
        with cf.ThreadPoolExecutor(cfg.get("parallel", 1)) as ex:
            futs = {}
            for r in runs:
                f = ex.submit(execute, r, cfg, binary)
                futs[f] = r
                DONE[r["name"]] = f
            for i, f in enumerate(cf.as_completed(futs)):
                res = f.result()
                results.append(res)
                print("[%d/%d] %s: ensemble Dice %.4f (%s s)" % (i + 1, len(runs), res["name"],
                      res["eval"]["ensemble"]["dice"], res["train_s"]), flush=True)
    prev = 0
    rj = os.path.join(cfg.get("report_dir", "docs"), "results.json")
    if os.path.exists(rj):
        try:
            prev = json.load(open(rj)).get("elapsed_s", 0) if only else 0
        except ValueError:
            pass
    report(results, cfg, cfg_path, prev or (time.time() - t0))
    print("experiment: wrote %s/results.md and results.json" % cfg.get("report_dir", "docs"))


if __name__ == "__main__":
    main()
