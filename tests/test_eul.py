"""EUL: unlearning adapters, the selective teacher-student objective, alternating epochs,
closed-form fusion and the request ledger."""

from __future__ import annotations

import json
import math

import pytest
import torch


def _random_model(kind: str):
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    torch.manual_seed(0)
    if kind == "llama":
        config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    else:
        config = GPT2Config(vocab_size=64, n_embd=32, n_layer=3, n_head=4, n_positions=32)
    return AutoModelForCausalLM.from_config(config).eval()


IDS = torch.tensor([[5, 17, 42, 8, 33, 3], [9, 1, 2, 60, 7, 7]])


def _logits(model):
    with torch.no_grad():
        return model(input_ids=IDS, attention_mask=torch.ones_like(IDS)).logits


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_adapters_start_as_the_base_sit_after_every_ffn_and_switch_off(kind):
    from obliviate.models.bottleneck import (adapters_disabled, adapters_of, attach_adapters, auto_bottleneck,
                                             base_parameter_count, find_ffn_modules)

    model = _random_model(kind)
    before = _logits(model)
    modules = find_ffn_modules(model)
    assert len(modules) == 3 and all(m.endswith(".mlp") for m in modules)
    width = auto_bottleneck(model, len(modules), 0.05)  # 0.5 % of so tiny a model is one unit
    attach_adapters(model, modules, width)
    assert torch.equal(_logits(model), before)  # zero-initialised up-projection: unchanged at the start
    added = sum(p.numel() for a in adapters_of(model).values() for p in a.parameters())
    assert abs(added / base_parameter_count(model) - 0.05) < 0.004  # within half a unit
    for adapter in adapters_of(model).values():
        torch.nn.init.normal_(adapter.up.weight)
    changed = _logits(model)
    assert not torch.allclose(changed, before)
    with adapters_disabled(model):
        assert torch.equal(_logits(model), before)  # the teacher, no second copy
    assert torch.equal(_logits(model), changed)


def test_unknown_ffn_name_is_refused_in_one_line():
    from obliviate.errors import ConfigError
    from obliviate.models.bottleneck import find_ffn_modules

    with pytest.raises(ConfigError, match="scope.modules"):
        find_ffn_modules(_random_model("llama"), ["ffw"])


def test_grams_are_the_input_statistics_of_both_maps_over_unpadded_tokens():
    from obliviate.models.bottleneck import adapters_of, attach_adapters, collect_grams, find_ffn_modules

    model = _random_model("llama")
    modules = find_ffn_modules(model)
    attach_adapters(model, modules, 4)
    adapter = adapters_of(model)[modules[1]]
    seen = []
    adapter.down.register_forward_hook(lambda m, a, o: seen.append((a[0].detach(), torch.relu(o).detach())))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    grams = collect_grams(model, [{"input_ids": IDS, "attention_mask": mask}])
    x, z = seen[0]
    keep = mask.reshape(-1).bool()
    xs = torch.cat([x.reshape(-1, 32)[keep], torch.ones(int(keep.sum()), 1)], 1)
    zs = torch.cat([z.reshape(-1, 4)[keep], torch.ones(int(keep.sum()), 1)], 1)
    assert torch.allclose(grams[f"{modules[1]}.down"], xs.T @ xs, atol=1e-5)
    assert torch.allclose(grams[f"{modules[1]}.up"], zs.T @ zs, atol=1e-5)
    assert int(grams["tokens"]) == 9


def test_fusing_one_adapter_returns_it_for_any_ridge():
    from obliviate.compose.fuse import fuse_linear

    torch.manual_seed(1)
    w = torch.randn(5, 3)
    x = torch.randn(2, 5)  # rank-deficient Gram: the ridge decides the unseen directions
    for ridge in (0.0, 1e-3, 10.0):
        if ridge == 0.0:
            x = torch.randn(20, 5)
        assert torch.allclose(fuse_linear([w], [x.T @ x], ridge).float(), w, atol=1e-5)


def test_fusion_is_the_least_squares_map_on_all_requests_data():
    from obliviate.compose.fuse import fuse_linear

    torch.manual_seed(2)
    xs = [torch.randn(30, 4, dtype=torch.float64) for _ in range(3)]
    ws = [torch.randn(4, 2, dtype=torch.float64) for _ in range(3)]
    fused = fuse_linear(ws, [x.T @ x for x in xs], ridge=0.0)
    stacked_x = torch.cat(xs)
    stacked_y = torch.cat([x @ w for x, w in zip(xs, ws)])
    expected = torch.linalg.lstsq(stacked_x, stacked_y).solution
    assert torch.allclose(fused, expected, atol=1e-10)
    # exact when one linear map explains every request's outputs
    shared = torch.randn(4, 2, dtype=torch.float64)
    assert torch.allclose(fuse_linear([shared] * 3, [x.T @ x for x in xs], 0.0), shared, atol=1e-10)


def test_fusion_by_hand_on_one_dimension():
    from obliviate.compose.fuse import fuse_linear

    # G = (4, 1), W = (1, 3): (4·1 + 1·3) / (4 + 1) = 1.4; with ridge 0.1, ε = 0.1·(4 + 1) = 0.5
    # pulls towards the mean: (7 + 0.5·(1 + 3)) / (5 + 2·0.5) = 1.5
    w = [torch.tensor([[1.0]]), torch.tensor([[3.0]])]
    g = [torch.tensor([[4.0]]), torch.tensor([[1.0]])]
    assert float(fuse_linear(w, g, 0.0)) == pytest.approx(1.4)
    assert float(fuse_linear(w, g, 0.1)) == pytest.approx(1.5)


def test_fusing_a_fused_adapter_with_a_later_request_equals_fusing_all_at_once():
    from obliviate.compose.fuse import fuse_states, select_grams, summed_grams

    torch.manual_seed(3)

    def adapter():
        state = {"m.down.weight": torch.randn(3, 4), "m.down.bias": torch.randn(3),
                 "m.up.weight": torch.randn(4, 3), "m.up.bias": torch.randn(4)}
        grams = {}
        for key, dim in (("m.down", 5), ("m.up", 4)):
            for prefix in ("", "retain."):
                x = torch.randn(12, dim, dtype=torch.float64)
                grams[prefix + key] = x.T @ x
        grams["tokens"] = grams["retain.tokens"] = torch.tensor([12.0], dtype=torch.float64)
        return state, grams

    (a, ga), (b, gb), (c, gc) = adapter(), adapter(), adapter()
    for data in ("forget", "forget+retain"):
        def pick(g, data=data):
            return select_grams(g, data, "toy")

        at_once = fuse_states([a, b, c], [pick(ga), pick(gb), pick(gc)], ["m"], ridge=0.0)
        ab = fuse_states([a, b], [pick(ga), pick(gb)], ["m"], ridge=0.0)
        stepwise = fuse_states([ab, c], [pick(summed_grams([ga, gb])), pick(gc)], ["m"], ridge=0.0)
        for key in at_once:
            assert torch.allclose(at_once[key], stepwise[key], atol=1e-4), (data, key)
    combined = select_grams(ga, "forget+retain", "toy")
    assert torch.equal(combined["m.down"], ga["m.down"] + ga["retain.m.down"])


def _stats(logits, labels):
    from obliviate.logprobs import token_nll
    from obliviate.objectives.base import GroupStats

    nll, mask = token_nll(logits, labels)
    return GroupStats(logits, labels, nll, mask)


def test_eul_objective_terms_by_hand():
    from obliviate.objectives.base import Reference
    from obliviate.objectives.eul import EULObjective, EULObjectiveConfig

    # Vocabulary of 2, one answer token: student logits (0, 0) → p = (0.5, 0.5); teacher (ln 3, 0)
    # → P = (0.75, 0.25). KL(P‖Q) = 0.75 ln 1.5 + 0.25 ln 0.5; the label is token 0, NLL = ln 2.
    student = torch.zeros(1, 2, 2, requires_grad=True)
    teacher = torch.tensor([[[math.log(3), 0.0], [math.log(3), 0.0]]])
    labels = torch.tensor([[-100, 0]])
    batch_group = {"input_ids": torch.zeros(1, 2, dtype=torch.long), "attention_mask": torch.ones(1, 2),
                   "labels": labels}
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)

    class Model:
        def __call__(self, input_ids, attention_mask):
            return type("Out", (), {"logits": student.expand(input_ids.shape[0], -1, -1)})()

    reference = Reference(model_logits=lambda b: teacher.expand(b["input_ids"].shape[0], -1, -1))
    objective = EULObjective(EULObjectiveConfig())
    loss, logs = objective(Model(), {"retain": batch_group}, reference)
    assert float(loss.detach()) == pytest.approx(0.8 * kl + 1.0 * math.log(2), rel=1e-5)
    loss, logs = objective(Model(), {"forget": batch_group}, reference)
    assert float(loss.detach()) == pytest.approx(-(kl + 0.2 * math.log(2)), rel=1e-5)
    # bounded ascent: past the cap a sequence contributes a constant and no gradient
    capped = EULObjective(EULObjectiveConfig(bound=0.01))
    loss, logs = capped(Model(), {"forget": batch_group}, reference)
    assert float(loss.detach()) == pytest.approx(-(0.01 + 0.2 * 0.01)) and logs["forget_capped"] == 1.0
    loss.backward()
    assert float(student.grad.abs().sum()) == 0.0
    # the default cap is log V (a uniform guess's NLL)
    assert EULObjectiveConfig().bound == 0.0


def test_alternating_batches_keep_roles_apart_and_cover_the_sets():
    from obliviate.schedules.alternating import AlternatingBatches

    sampler = AlternatingBatches(5, 12, 4, retain_per_cycle=8, seed=3)
    assert len(sampler) == 2 + 2
    seen_retain = set()
    for cycle in range(3):
        sampler.set_epoch(cycle)
        batches = list(sampler)
        roles = [{"forget" if i < 5 else "retain" for i in b} for b in batches]
        assert all(len(r) == 1 for r in roles)
        assert [r.pop() for r in roles] == ["retain", "retain", "forget", "forget"]  # retain epoch first
        assert sorted(i for b in batches[2:] for i in b) == list(range(5))
        seen_retain |= {i for b in batches[:2] for i in b}
    assert seen_retain == set(range(5, 17))  # windows of 8 cover all 12 over the cycles
    assert list(AlternatingBatches(5, 12, 4, seed=3)) != list(AlternatingBatches(5, 12, 4, seed=4))


def test_ledger_hash_round_trip_and_merge(tmp_path):
    from obliviate.ledger import forget_set_hash, merge_ledgers, new_request, read_ledger, write_ledger

    records = [{"question": "Q?", "answer": "A."}, {"text": "é"}]
    assert forget_set_hash(records) == forget_set_hash([dict(reversed(list(r.items()))) for r in records])
    assert forget_set_hash(records) != forget_set_hash(records[::-1])
    a = new_request(records, method="eul", source={"path": "/x.jsonl"})
    b = new_request(records[:1], method="npo", request_id="ticket-42")
    write_ledger(tmp_path, [a, b])
    assert read_ledger(tmp_path) == [a, b]
    assert b["id"] == "ticket-42" and a["id"] == "req-" + a["forget_sha256"][:12]
    assert merge_ledgers([[a], [a, b]]) == [a, b]
    assert read_ledger(tmp_path / "nowhere") == []
    (tmp_path / "requests.json").write_text("{}")
    from obliviate.errors import ConfigError

    with pytest.raises(ConfigError, match="ledger"):
        read_ledger(tmp_path)


# 80 retain items per retain epoch and Grams on forget+retain: with 40 and forget-only Grams the
# fused adapter kept one author (forget prob 0.59, seed 0) or lost retain answers (0.886, seed 1)
# on the test-size models; these settings clear every assertion below with margin on seeds 0-2.
EUL_OVERRIDES = ["training.learning_rate=1e-2", "training.batch_size=4", "schedule.cycles=12",
                 "schedule.retain_per_cycle=80"]


def test_eul_requests_fuse_and_are_checked_from_the_ledger(tmp_path, tiny_models, tiny_data, capsys):
    """Two deletion requests (one author each) on the test-size target: each EUL run forgets its
    author, the fused adapter forgets both with retain answers kept, and `eval --requests` re-checks
    both from the fused folder's ledger."""
    from obliviate.cli import main
    from obliviate.evaluate.tofu import EvalConfig, evaluate_model
    from obliviate.io import write_jsonl_atomic
    from obliviate.models.loading import load_model, load_tokenizer

    authors = sorted({r["author"] for r in tiny_data.forget})
    assert len(authors) == 2
    sets = [[r for r in tiny_data.forget if r["author"] == a] for a in authors]
    retain_file = tmp_path / "retain.jsonl"
    write_jsonl_atomic(retain_file, tiny_data.retain)
    runs = []
    for n, records in enumerate(sets):
        forget_file = tmp_path / f"forget{n}.jsonl"
        write_jsonl_atomic(forget_file, records)
        assert main(["unlearn", "--model", str(tiny_models.target), "--forget", str(forget_file), "--retain",
                     str(retain_file), "--method", "eul", "--out", str(tmp_path / f"req{n}"), "--quiet",
                     *[x for o in EUL_OVERRIDES for x in ("--set", o)]]) == 0
        runs.append(tmp_path / f"req{n}")
    saved = json.loads((runs[0] / "eul_adapter.json").read_text())
    assert saved["type"] == "eul" and saved["info"]["adapters"] == 2 and not (runs[0] / "model.safetensors").exists()
    assert main(["compose", "fuse", *map(str, runs), "--grams", "forget+retain", "--out", str(tmp_path / "fused")]) == 0
    ledger = json.loads((tmp_path / "fused" / "requests.json").read_text())["requests"]
    assert [e["n_records"] for e in ledger] == [10, 10] and all(e["method"] == "eul" for e in ledger)

    config = EvalConfig(mia=False, passages=False, max_new_tokens=tiny_data.max_new_tokens)
    tok = load_tokenizer(tiny_models.target)
    splits = {"forget0": sets[0], "forget1": sets[1], "retain": tiny_data.eval_splits["retain"]}

    def probs(path):
        result = evaluate_model(load_model(path), tok, splits, config=config, show_progress=False)
        return {k: result.summary["metrics"][f"{k}_Q_A_Prob"] for k in splits}

    target, own0, own1, fused = (probs(p) for p in (tiny_models.target, runs[0], runs[1], tmp_path / "fused"))
    assert own0["forget0"] < 0.5 * target["forget0"] and own1["forget1"] < 0.5 * target["forget1"]
    assert own0["forget1"] > own0["forget0"]  # a request's adapter forgets its own set most
    assert fused["forget0"] < 0.5 * target["forget0"] and fused["forget1"] < 0.5 * target["forget1"]
    assert fused["retain"] > 0.9 * target["retain"]

    capsys.readouterr()
    assert main(["eval", "--model", str(tmp_path / "fused"), "--requests", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count("(eul, 10 records)") == 2 and "forget prob" in out
    # a folder that is not an EUL adapter is refused in one line
    assert main(["compose", "fuse", str(tiny_models.target), "--out", str(tmp_path / "bad")]) == 2
    assert "not an EUL adapter folder" in capsys.readouterr().err


def test_eul_save_load_round_trip_gives_identical_logits_and_a_ledger(tmp_path, tiny_models, tiny_data):
    from obliviate import unlearn
    from obliviate.ledger import forget_set_hash, read_ledger
    from obliviate.models.loading import load_model

    out = tmp_path / "eul"
    result = unlearn(str(tiny_models.target), tiny_data.forget[:4], tiny_data.retain, method="eul",
                     overrides=["schedule.cycles=1", "schedule.retain_per_cycle=8", "training.learning_rate=1e-2",
                                "training.batch_size=4"], out=out, request_id="ticket-7", show_progress=False)
    with torch.no_grad():
        expected = result.model.eval()(input_ids=IDS, attention_mask=torch.ones_like(IDS)).logits
    reloaded = load_model(out)
    assert torch.equal(expected, _logits(reloaded))
    assert not all(p.requires_grad for p in reloaded.parameters())
    [entry] = read_ledger(out)
    assert entry["id"] == "ticket-7" and entry["forget_sha256"] == forget_set_hash(tiny_data.forget[:4])
    assert entry["method"] == "eul" and entry["source"] is None  # records given as a list: no source
    # unlearning the adapted model again would save adapter weights into a plain model: refused
    from obliviate.errors import ConfigError

    with pytest.raises(ConfigError, match="fuse"):
        unlearn(str(out), tiny_data.forget[4:6], tiny_data.retain, method="npo", show_progress=False)


def test_eul_run_on_the_embedded_benchmark_and_its_request_reloads_from_the_benchmark(tmp_path, tiny_models):
    from obliviate import api, run
    from tests.conftest import TEST_OVERRIDES

    overrides = [o for o in TEST_OVERRIDES if o.startswith(("benchmark.", "audit."))]
    # Seeds 0/1/2 of this setting on the test-size target measured forget prob 0.25 / 0.007 / 0.009 and
    # utility 0.94-0.97 x the target's; twice the forget steps (batch 8, 20 cycles) forget more and
    # cost up to a third of the utility (general-knowledge generations suffer first).
    result = run(method="eul", overrides=[*overrides, "training.learning_rate=1e-2", "training.batch_size=16",
                                          "schedule.cycles=10"],
                 out=tmp_path / "eul", show_progress=False, log=lambda *_: None)
    target, unlearned = result.rows["target"], result.rows["unlearned"]
    assert unlearned["forget_Q_A_Prob"] < 0.5 * target["forget_Q_A_Prob"]
    assert unlearned["model_utility"] >= 0.85 * target["model_utility"]
    assert unlearned["retain_Q_A_Prob"] >= 0.95 * target["retain_Q_A_Prob"]
    info = result.summary["unlearning"]
    assert info["schedule"]["cycles"] == 10 and info["scope"]["adapters"] == 2
    [row] = api.check_requests(tmp_path / "eul" / "model", show_progress=False)
    assert row["status"] == "ok" and row["n_records"] == 20
    assert row["metrics"]["forget_Q_A_Prob"] == pytest.approx(unlearned["forget_Q_A_Prob"], abs=1e-6)
