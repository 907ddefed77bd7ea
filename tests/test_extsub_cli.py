"""Ext-Sub end to end from the command line: two LoRA adapters fine-tuned with `obliviate finetune`
on good and deficient answers, combined by `obliviate compose extsub` into an adapter and a merged
model that agree."""

from __future__ import annotations

import json

import torch


def test_finetune_two_adapters_then_extsub_adapter_and_merged_model_agree(tmp_path, tiny_models, tiny_data, capsys):
    from obliviate.cli import main
    from obliviate.models.loading import load_model

    good = tmp_path / "good.jsonl"
    bad = tmp_path / "bad.jsonl"
    records = tiny_data.forget[:8]
    good.write_text("".join(json.dumps({"question": r["question"], "answer": r["answer"]}) + "\n" for r in records))
    bad.write_text("".join(json.dumps({"question": r["question"], "answer": r["perturbed_answer"][0]}) + "\n"
                           for r in records))
    target = str(tiny_models.target)
    for data, out in ((good, "expert"), (bad, "anti")):
        assert main(["finetune", "--model", target, "--data", str(data), "--lora", "--epochs", "1",
                     "--learning-rate", "1e-2", "--out", str(tmp_path / out), "--quiet"]) == 0
    args = ["compose", "extsub", "--expert", str(tmp_path / "expert"), "--anti-expert", str(tmp_path / "anti"),
            "--alpha", "1.0"]
    assert main([*args, "--out", str(tmp_path / "adapter")]) == 0
    assert main([*args, "--merge", "--out", str(tmp_path / "merged")]) == 0
    assert "ext-sub of" in capsys.readouterr().out
    info = json.loads((tmp_path / "adapter" / "extsub.json").read_text())
    assert info["op"] == "ext-sub" and info["modules"] > 0
    ids = torch.tensor([[3, 14, 15, 92, 6]])
    with torch.no_grad():
        via_adapter = load_model(tmp_path / "adapter").eval()(input_ids=ids).logits
        merged = load_model(tmp_path / "merged").eval()(input_ids=ids).logits
        base = load_model(target).eval()(input_ids=ids).logits
    torch.testing.assert_close(via_adapter, merged, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(merged, base)
    # a folder that is not an adapter is refused in one line
    assert main(["compose", "extsub", "--expert", str(tmp_path / "expert"), "--anti-expert", target,
                 "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
