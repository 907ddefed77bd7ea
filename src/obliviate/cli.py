"""Command line: parses arguments, calls :mod:`obliviate.api`, prints. Nothing else lives here."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Sequence

from obliviate.errors import ObliviateError

EPILOG = "Docs: docs/ in the repository. Errors print one line and exit with status 2."


def _add_recipe_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", help="method preset (see `obliviate methods`); replaces the recipe's four axes")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set training.learning_rate=1e-4 "
                        "--set objective.beta=0.5 --set scope=lora (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _whole_number(minimum: int, what: str):
    """An argparse type: a whole number of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what} is a whole number >= {minimum}, got {value}")
        return value
    return parse


_seed_count = _whole_number(1, "the number of seeds")
_seed = _whole_number(0, "a seed")


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error format: one line, exit status 2 (not usage + message)."""

    def error(self, message: str):
        self.exit(2, f"obliviate: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="obliviate", description="Unlearning for large language models: unlearn a forget set, "
        "keep everything else, and prove both with TOFU-style numbers.", epilog=EPILOG)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("run", help="the whole pipeline: models, unlearning, evaluation, report",
                       description="Run a recipe end to end. Without RECIPE, the embedded default: builds the "
                       "`authors` benchmark, trains (or reuses cached) tiny target and retain models, unlearns "
                       "forget10 with NPO + a retain NLL term, evaluates target, retain and unlearned models, "
                       "prints a comparison table and writes a run folder with a Markdown report and plot.",
                       epilog=EPILOG)
    p.add_argument("recipe", nargs="?", help="recipe YAML (default: the embedded default recipe)")
    p.add_argument("--forget-split", help="forget01, forget05 or forget10")
    p.add_argument("--out", help="run folder to create (default: runs/<benchmark>-<split>-<method>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run started with --set training.save_every=N (its folder)")
    p.add_argument("--seeds", type=_seed_count, default=1, metavar="N",
                   help="repeat unlearning and its evaluation over N seeds (the recipe's seed, seed+1, ...) and "
                   "report each metric's median [min, max]; the benchmark and its models keep the recipe's seed, "
                   "the saved model is the first seed's (default 1)")
    p.add_argument("--audit", action="store_true",
                   help="after the run, attack its models (relearning, quantisation, prompt probes) and add the "
                   "recovery table to the report; the same as `obliviate audit RUN_DIR` afterwards")
    _add_recipe_options(p)

    p = sub.add_parser("audit", help="does the forgetting survive relearning, quantisation and other prompts?",
                       description="Attack the target, retain and unlearned models of a finished run folder and "
                       "report, per attack, how much of the forgotten knowledge comes back: recovery = (attacked "
                       "- un-attacked) / (target - un-attacked) forget-answer probability, beside the retain "
                       "model's own recovery (the honest floor). Attacks: relearn (fine-tune on half the forget "
                       "set), relearn-benign (on retain data), quant8, quant4 (round-to-nearest weights), "
                       "paraphrase, fewshot, prefix (part of the answer given), cloze (fill in the blank). Writes "
                       "RUN_DIR/audit/ and adds an audit section to summary.json and report.md; the saved models "
                       "are only read. Settings: --set audit.relearn_steps=N and the other audit.* values (see "
                       "docs/audit.md). Interrupted, the same command continues.", epilog=EPILOG)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `obliviate run`")
    p.add_argument("--attacks", help="comma-separated subset (default: all): relearn, relearn-benign, quant8, "
                   "quant4, paraphrase, fewshot, prefix, cloze")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an audit value, e.g. audit.relearn_steps=10 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("unlearn", help="unlearn a forget set from a model and save it",
                       description="Unlearn FORGET from MODEL, keeping RETAIN, and save the result "
                       "(model or adapter, safetensors) with its recipe.", epilog=EPILOG)
    p.add_argument("--model", help="model folder or hub id (required)")
    p.add_argument("--forget", help="forget records: JSONL/JSON/CSV/Parquet file, folder or dataset id (required)")
    p.add_argument("--retain", help="retain records (same formats); needed by objectives with a retain term")
    p.add_argument("--holdout", help="records of the forget set's kind the model never saw (same formats); "
                   "schedule until_unseen stops when the forget set looks like them (never trained on)")
    p.add_argument("--resume", metavar="OUT",
                   help="continue an interrupted unlearning started with --set training.save_every=N (its --out "
                        "folder); takes no other option")
    p.add_argument("--recipe", help="recipe YAML for objective/scope/schedule/training (default: none: the "
                   "--method's paper defaults, NPO without --method, and the default training settings; not the "
                   "embedded benchmark's recipe, which is tuned for its tiny model)")
    p.add_argument("--out", help="folder to create for the unlearned model (required)")
    p.add_argument("--request-id", help="id of this deletion request in the model's requests.json "
                   "(default: req- + the forget set's hash)")
    _add_recipe_options(p)

    p = sub.add_parser("eval", help="evaluate a model on a benchmark (TOFU-style metrics)",
                       description="Evaluate MODEL on a benchmark's forget, retain, real-authors and world-facts "
                       "splits. Forget quality needs --retain-model or --retain-results. With --requests, the deletion "
                       "requests MODEL records; with --deficiency, Ext-Sub's deficiency rate and capability.",
                       epilog=EPILOG)
    p.add_argument("--model", required=True, help="model folder or hub id")
    p.add_argument("--benchmark", default="authors", help="authors (embedded) or tofu")
    p.add_argument("--forget-split", default="forget10")
    p.add_argument("--size", default="default", help="embedded benchmark size: default, small or test")
    p.add_argument("--seed", type=_seed, default=0, help="embedded benchmark seed (as in the recipe that built the model)")
    p.add_argument("--source", help="where benchmark files come from (tofu: hub id or local folder)")
    p.add_argument("--retain-model", help="retain model, for forget quality")
    p.add_argument("--retain-results", help="saved evaluation folder of a retain model (`eval --out`, or a run "
                   "folder's eval/retain), for forget quality; refused unless it scored the same benchmark, forget "
                   "split, size, seed and forget questions; summary.json records which was used")
    p.add_argument("--out", help="folder to write summary.json and items/<split>.jsonl into")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="greedy generation budget (default: the benchmark's, tofu 200, authors 32; 32 with "
                        "--requests, 48 with --deficiency)")
    p.add_argument("--template", default=None,
                   help="prompt template the model was fine-tuned with: auto (default: the tokenizer's chat "
                        "template if it has one, else plain), plain, tofu-phi, tofu-llama2, chat, open-unlearning")
    p.add_argument("--requests", action="store_true",
                   help="instead of a benchmark, re-check every deletion request in MODEL's requests.json on its "
                        "own forget set (forget quality with --retain-model)")
    p.add_argument("--deficiency", metavar="TASK_DIR",
                   help="instead of a benchmark, the deficiency rate and capability (ROUGE-L recall) of MODEL's "
                        "greedy answers on a task folder written by `obliviate deficiency` (Ext-Sub)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("finetune", help="fine-tune a model on your data, or build the embedded models",
                       description="With --model: fine-tune MODEL (full weights, or a LoRA adapter with --lora) on "
                       "--data (QA or text records) and save it, its tokenizer and finetune.json to --out. "
                       "Defaults: 3 epochs, linear schedule, learning rate 1e-5 (1e-4 with --lora), batch 8, no "
                       "weight decay. Without --model: train the embedded benchmark's tiny target model (all "
                       "authors) and retain model (all but the forget split) and cache them; prints their folders. "
                       "Cache: $OBLIVIATE_CACHE, else $XDG_CACHE_HOME/obliviate, else ~/.cache/obliviate.",
                       epilog=EPILOG)
    p.add_argument("--forget-split", default="forget10", help="embedded mode: forget split of the retain model")
    p.add_argument("--size", default="default", help="embedded mode: default, small or test")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--model", help="model folder or hub id to fine-tune (selects the own-model mode)")
    p.add_argument("--data", help="training records: JSONL/JSON/CSV/Parquet file, folder or dataset id")
    p.add_argument("--out", help="folder to create for the fine-tuned model or adapter")
    p.add_argument("--lora", action="store_true", help="train and save a LoRA adapter instead of full weights")
    p.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default 8)")
    p.add_argument("--lora-alpha", type=int, default=16, help="LoRA alpha (default 16)")
    p.add_argument("--lora-targets", nargs="+", metavar="MODULE",
                   help="module names to adapt (default all-linear: every linear layer but the output head)")
    p.add_argument("--epochs", type=float, default=3, help="default 3")
    p.add_argument("--learning-rate", type=float, help="peak rate, linear decay (default 1e-5, 1e-4 with --lora)")
    p.add_argument("--batch-size", type=int, default=8, help="default 8")
    p.add_argument("--max-length", type=int, default=512, help="tokens per record (default 512)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("deficiency", help="write Ext-Sub's embedded deficiency task (expert/anti-expert data)",
                       description="Write the embedded deficiency task for Ext-Sub to --out: expert.jsonl (questions "
                       "answered well, a --contamination fraction deficiently), anti_expert.jsonl (all deficient), "
                       "eval.jsonl and task.json. The questions are --questions of the embedded benchmark's "
                       "retained authors' (forget10 split, benchmark seed 0), whose facts the embedded target model "
                       "knows; that model (trained or reused from the cache) is the base to fine-tune the expert "
                       "and anti-expert adapters from, and its folder is printed. Then: `obliviate finetune "
                       "--model BASE --data DIR/expert.jsonl --lora --out EXPERT` (and anti_expert.jsonl), "
                       "`obliviate compose extsub --expert EXPERT --anti-expert ANTI --merge --out MODEL`, "
                       "`obliviate eval --model MODEL --deficiency DIR`.", epilog=EPILOG)
    p.add_argument("--kind", required=True, choices=("toxic", "untruthful"),
                   help="toxic (the answer plus an insult) or untruthful (a wrong value)")
    p.add_argument("--out", required=True, help="folder to create")
    p.add_argument("--size", default="default", help="embedded benchmark size: default, small or test")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the contamination, insults and wrong values")
    p.add_argument("--contamination", type=float, default=0.3,
                   help="fraction of the expert's answers that are deficient too (default 0.3)")
    p.add_argument("--questions", type=int, default=100, help="number of questions (default 100)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("mask", help="compute a WAGLE weight mask and save it (safetensors)",
                       description="Score every weight of MODEL by WAGLE attribution (or an ablation score) on "
                       "FORGET/RETAIN and save the boolean mask of the top --ratio fraction (the weights an "
                       "unlearning run may update). Use it with --set scope=wagle --set scope.mask_path=FILE.",
                       epilog=EPILOG)
    p.add_argument("--model", required=True, help="model folder or hub id")
    p.add_argument("--forget", required=True, help="forget records (JSONL/JSON/CSV/Parquet, folder or dataset id)")
    p.add_argument("--retain", help="retain records; WAGLE's score uses their gradient")
    p.add_argument("--ratio", type=float, default=None, help="fraction of weights to update (default 0.95)")
    p.add_argument("--score", default=None, help="wagle (default), magnitude, gradient, snip or random")
    p.add_argument("--mu", type=float, default=None, help="WAGLE's Hessian constant (default 1e-6)")
    p.add_argument("--recipe", help="recipe YAML (its objective's forget_tokens and scope options are used)")
    p.add_argument("--out", required=True, help="mask file to create (.safetensors)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value (repeatable)")

    p = sub.add_parser("compose", help="combine trained adapters (Ext-Sub, EUL fusion)",
                       description="Module arithmetic on trained adapters.", epilog=EPILOG)
    compose = p.add_subparsers(dest="compose_command", metavar="OPERATION")
    p = compose.add_parser("fuse", help="fuse EUL adapters of several deletion requests into one",
                           description="Closed-form fusion (EUL, arXiv 2310.20150) of the unlearning adapters of "
                           "several runs (scope: eul), from the Gram matrices each run stored: no data, no "
                           "training. The result honours every request of its parts (requests.json).",
                           epilog=EPILOG)
    p.add_argument("adapters", nargs="+", metavar="RUN", help="run folders (or their model/) with scope eul")
    p.add_argument("--ridge", type=float, default=1e-3,
                   help="ridge, relative to the mean Gram diagonal, pulling unseen directions to the mean (1e-3)")
    p.add_argument("--grams", default="forget", choices=["forget", "forget+retain"],
                   help="regress on each adapter's forget-set inputs (default, the paper) or also on its retain "
                        "inputs, which keeps each adapter's behaviour on retained data")
    p.add_argument("--out", required=True, help="folder to create")
    p = compose.add_parser("extsub", help="expert minus the anti-expert's deficiency (Ext-Sub)",
                           description="Ext-Sub (arXiv 2308.08090) on two PEFT adapters with the same config: per "
                           "output row, keep what the anti-expert shares with the expert and subtract only the "
                           "orthogonal remainder. Writes an adapter (exact, or --rank N by SVD) or, with --merge, "
                           "a full model.", epilog=EPILOG)
    p.add_argument("--expert", required=True, help="adapter trained on good data")
    p.add_argument("--anti-expert", required=True, help="adapter trained on deficient data (same PEFT config)")
    p.add_argument("--alpha", type=float, default=1.0, help="weight of the subtracted part (default 1.0)")
    p.add_argument("--op", default="ext-sub", help="ext-sub (default), subtraction or addition")
    p.add_argument("--merge", action="store_true", help="write a full model with the result merged into the base")
    p.add_argument("--base", help="base model for --merge (default: the expert's base_model_name_or_path)")
    p.add_argument("--rank", type=int, help="SVD-truncate the result to this LoRA rank (default: exact)")
    p.add_argument("--out", required=True, help="folder to create")

    sub.add_parser("methods", help="list methods and the components of each axis",
                   description="List method presets and the objectives, scopes, schedules and compositions "
                   "they are made of.")
    sub.add_parser("benchmarks", help="list benchmarks", description="List benchmarks and their forget splits. `authors` is embedded: the package "
                   "generates it and trains its tiny target and retain models on CPU. `tofu` loads locuslab/TOFU "
                   "from the hub or from a local folder of its files (--source).")
    return parser


def _cmd_methods() -> None:
    from obliviate.compose import COMPOSITIONS
    from obliviate.methods import METHODS
    from obliviate.objectives import OBJECTIVES
    from obliviate.schedules import SCHEDULES
    from obliviate.scopes import SCOPES

    print("methods (presets; use --method NAME):")
    for m in METHODS.values():
        print(f"  {m.name:<10} {m.description}  [{m.source}]")
    for title, registry in (("objectives", OBJECTIVES), ("scopes", SCOPES), ("schedules", SCHEDULES),
                            ("compositions", COMPOSITIONS)):
        print(f"\n{title} (recipe key `{registry.axis}`):")
        for name, doc in registry.describe().items():
            print(f"  {name:<10} {doc}")


def _cmd_benchmarks() -> None:
    from obliviate.benchmarks import authors, base, tofu  # noqa: F401

    for spec in base.BENCHMARKS.values():
        print(f"  {spec.name:<8} {spec.description}; forget splits: {', '.join(spec.forget_splits)}")


def _note(line: str) -> None:
    print(line, file=sys.stderr)


def _only_resume(args: argparse.Namespace, names: Sequence[str], **others: bool) -> None:
    """--resume takes everything from the interrupted run's folder; refuse options that would differ."""
    from obliviate.errors import ConfigError

    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None)]
    given += [f"--{n}" for n, value in others.items() if value]
    if given:
        raise ConfigError(f"--resume takes the recipe and inputs from the run folder; drop {', '.join(given)}")


def _or(value, default):
    return default if value is None else value


def _dispatch(args: argparse.Namespace) -> int:
    quiet = getattr(args, "quiet", False)
    if args.command == "methods":
        _cmd_methods()
    elif args.command == "benchmarks":
        _cmd_benchmarks()
    elif args.command == "run" and args.resume:
        from obliviate import api

        _only_resume(args, ("recipe", "forget_split", "out", "method", "overrides"), seeds=args.seeds != 1)
        api.resume_run(args.resume, show_progress=not quiet, audit=args.audit)
    elif args.command == "run":
        from obliviate import api

        api.run(args.recipe, method=args.method, forget_split=args.forget_split,
                overrides=args.overrides, out=args.out, seeds=args.seeds, show_progress=not quiet, audit=args.audit)
    elif args.command == "audit":
        from obliviate import api

        api.audit(args.run_dir, attacks=args.attacks, overrides=args.overrides, show_progress=not quiet)
    elif args.command == "unlearn":
        from obliviate import api
        from obliviate.errors import ConfigError

        if args.resume:
            _only_resume(args, ("model", "forget", "retain", "holdout", "recipe", "out", "request_id", "method",
                                "overrides"))
            result = api.resume_unlearn(args.resume, show_progress=not quiet, log=_note)
        else:
            missing = [f"--{name}" for name in ("model", "forget", "out") if getattr(args, name) is None]
            if missing:
                raise ConfigError(f"unlearn needs {', '.join(missing)} (or --resume OUT to continue a run)")
            result = api.unlearn(args.model, args.forget, args.retain, method=args.method, recipe=args.recipe,
                                 overrides=args.overrides, out=args.out, request_id=args.request_id,
                                 holdout=args.holdout, show_progress=not quiet, log=_note)
        from obliviate.distributed import is_main_process

        if is_main_process():
            print(f"unlearned model saved to {result.out} ({result.seconds:.1f} s)")
    elif args.command == "deficiency":
        from obliviate import api

        info = api.deficiency_task(args.kind, out=args.out, size=args.size, seed=args.seed,
                                   contamination=args.contamination, n_questions=args.questions,
                                   show_progress=not quiet)
        out = info["out"]
        print(f"{info['kind']} deficiency task ({info['n_questions']} questions, contamination "
              f"{info['contamination']:g}) written to {out}:\n"
              f"  expert data:       {os.path.join(out, 'expert.jsonl')}\n"
              f"  anti-expert data:  {os.path.join(out, 'anti_expert.jsonl')}\n"
              f"  evaluation:        {os.path.join(out, 'eval.jsonl')} (task.json)\n"
              f"base model: {info['base_model']}\n"
              f"next: obliviate finetune --model {info['base_model']} --data {os.path.join(out, 'expert.jsonl')} "
              f"--lora --out EXPERT (and anti_expert.jsonl --out ANTI), then obliviate compose extsub --expert EXPERT "
              f"--anti-expert ANTI --merge --out MODEL, then obliviate eval --model MODEL --deficiency {out}")
    elif args.command == "eval" and args.deficiency:
        from obliviate import api
        from obliviate.errors import ConfigError

        given = [flag for flag, value in (("--requests", args.requests), ("--retain-model", args.retain_model),
                                          ("--retain-results", args.retain_results), ("--out", args.out))
                 if value]
        if given:
            raise ConfigError(f"eval --deficiency does not take {' or '.join(given)}")
        result = api.evaluate_deficiency_task(args.model, args.deficiency, batch_size=args.batch_size,
                                              max_new_tokens=_or(args.max_new_tokens, 48), show_progress=not quiet)
        print(f"deficiency ({result['kind']}): {result['deficiency']:.3f}   "
              f"capability (ROUGE-L recall): {result['capability']:.3f}   ({result['n']} questions)")
    elif args.command == "eval" and args.requests:
        from obliviate import api
        from obliviate.report.tables import requests_table

        rows = api.check_requests(args.model, retain_model=args.retain_model, batch_size=args.batch_size,
                                  max_new_tokens=_or(args.max_new_tokens, 32), show_progress=not quiet)
        print(requests_table(rows))
    elif args.command == "eval":
        from obliviate import api
        from obliviate.report import comparison_table

        result = api.evaluate(args.model, benchmark=args.benchmark, forget_split=args.forget_split, size=args.size,
                              seed=args.seed, source=args.source, retain_model=args.retain_model,
                              retain_results=args.retain_results, out=args.out, batch_size=args.batch_size,
                              max_new_tokens=args.max_new_tokens, template=args.template, show_progress=not quiet)
        from obliviate.distributed import is_main_process
        from obliviate.report.tables import privacy_table

        if not is_main_process():  # the processes shared the evaluation; one reports it
            return 0
        print(comparison_table({"model": result.summary["metrics"]}))
        used = result.summary.get("retain_results")
        if used:
            recorded = ", ".join(f"{k} {used[k]}" for k in ("benchmark", "forget_split", "size", "seed")
                                 if used.get(k) is not None)
            print(f"forget quality against the retain results in {used['path']}"
                  + (f" ({recorded})" if recorded else ""))
        privacy = privacy_table({"model": result.summary["metrics"]})
        if privacy:
            print(f"\n{privacy}")
        if args.out:
            print(f"results written to {args.out}")
    elif args.command == "mask":
        from obliviate import api

        overrides = ["scope=wagle", *args.overrides]
        for key in ("ratio", "score", "mu"):
            if getattr(args, key) is not None:
                overrides.append(f"scope.{key}={getattr(args, key)}")
        summary = api.compute_mask(args.model, args.forget, args.retain, out=args.out, recipe=args.recipe,
                                   overrides=overrides)
        print(f"mask saved to {args.out}: {summary['selected']:,} of {summary['total']:,} weights "
              f"({summary['fraction']:.4f}) trainable, score {summary['score']}, {summary['mask_seconds']:.1f} s")
    elif args.command == "compose":
        from obliviate import api

        if args.compose_command == "fuse":
            info = api.compose_fuse(args.adapters, out=args.out, ridge=args.ridge, grams=args.grams)
            print(f"fused {info['adapters']} adapters ({info['modules']} modules, {info['requests']} requests) "
                  f"into {args.out}")
            return 0
        if args.compose_command != "extsub":
            print("obliviate compose: choose an operation: extsub or fuse", file=sys.stderr)
            return 2
        info = api.compose_extsub(args.expert, args.anti_expert, out=args.out, alpha=args.alpha, op=args.op,
                                  merge=args.merge, base=args.base, rank=args.rank)
        print(f"{args.op} of {info['modules']} modules written to {args.out} ({info['output']})")
    elif args.command == "finetune" and args.model:
        from obliviate import api
        from obliviate.errors import ConfigError

        missing = [flag for flag, value in (("--data", args.data), ("--out", args.out)) if not value]
        if missing:
            raise ConfigError(f"finetune --model needs {' and '.join(missing)}")
        result = api.finetune(args.model, args.data, out=args.out, lora=args.lora, lora_r=args.lora_r,
                              lora_alpha=args.lora_alpha, lora_targets=args.lora_targets, epochs=args.epochs,
                              learning_rate=args.learning_rate, batch_size=args.batch_size,
                              max_length=args.max_length, seed=args.seed, show_progress=not quiet)
        print(f"fine-tuned {'adapter' if args.lora else 'model'} saved to {result.out} "
              f"({result.n_records} records, {result.seconds:.1f} s)")
    elif args.command == "finetune":
        from obliviate.benchmarks.authors import ensure_models
        from obliviate.errors import ConfigError

        given = [flag for flag, value in (("--data", args.data), ("--out", args.out), ("--lora", args.lora))
                 if value]
        if given:
            raise ConfigError(f"finetune {' '.join(given)} needs --model (without it, finetune builds the "
                              "embedded benchmark's models)")
        models = ensure_models(args.forget_split, args.size, args.seed, show_progress=not quiet)
        print(f"target: {models.target}\nretain: {models.retain}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False):  # every progress bar off: ours, Trainer's, transformers', the hub's
        from obliviate.progress import silence_all

        silence_all()
    if args.version:
        from obliviate import __version__

        print(__version__)
        return 0
    if not args.command:
        parser.print_help()
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from obliviate.io import describe_os_error

    previous = _raise_on_sigterm()
    try:
        return _dispatch(args)
    except ObliviateError as exc:
        print(f"obliviate: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"obliviate: terminated; {_kept_note(args)}", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"obliviate: interrupted; {_kept_note(args)}", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, permissions: the user's to fix, one line
        line = describe_os_error(exc)
        if line is None:
            raise
        print(f"obliviate: error: {line}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and ``timeout`` send), raised where the program is so that every
    atomic writer removes its temporary output on the way out, as for Ctrl-C."""


def _raise_on_sigterm():
    def handler(signum, frame):
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        return None


def _kept_note(args: argparse.Namespace) -> str:
    """What an interrupted command left: checkpoints to resume from, or nothing."""
    if args.command == "audit" and Path(args.run_dir, "audit").is_dir():
        return f"finished measurements kept in {Path(args.run_dir, 'audit')}; the same command continues"
    out = getattr(args, "out", None) or getattr(args, "resume", None)
    if out and Path(out, "checkpoints").is_dir():
        return f"checkpoints kept in {out}; continue with `obliviate {args.command} --resume {out}`"
    return "no partial output was kept"
