"""Forget/retain pairing is a pure function of (forget index, epoch, seed): the same on every
process of a multi-process run and after a resume, and it walks through the whole retain set."""

from __future__ import annotations

from obliviate.schedules.base import ForgetSampler, ItemKey
from obliviate.train.data import PairedDataset


def items(n, role):
    return [{role: {"input_ids": [i], "labels": [i]}} if role == "forget" else {"input_ids": [100 + i], "labels": [0]}
            for i in range(n)]


def retain_of(dataset, key):
    return dataset[key]["retain"]["input_ids"][0] - 100


def test_pairing_is_pure_and_covers_the_retain_set():
    forget, retain = items(4, "forget"), items(10, "retain")
    a, b = PairedDataset(forget, retain, seed=3), PairedDataset(forget, retain, seed=3)
    keys = [ItemKey(i, e) for e in range(5) for i in range(4)]
    # another process (or a resumed run) serving the keys in any order gets the same partners
    assert [retain_of(a, k) for k in keys] == [retain_of(b, k) for k in reversed(keys)][::-1]
    for epoch in range(5):
        partners = [retain_of(a, ItemKey(i, epoch)) for i in range(4)]
        assert len(set(partners)) == 4  # an epoch never pairs two forget items with one retain item
    # 20 pairs over 10 retain items: each used exactly twice (epochs walk through the permutation)
    used = [retain_of(a, k) for k in keys]
    assert sorted(used) == sorted(list(range(10)) * 2)
    assert [retain_of(PairedDataset(forget, retain, seed=4), k) for k in keys] != used  # the seed matters


def test_sampler_order_depends_only_on_seed_and_epoch():
    s = ForgetSampler(6, seed=1)
    first = list(s)
    s.set_epoch(3)
    third = list(s)
    assert {k.epoch for k in first} == {0} and {k.epoch for k in third} == {3}
    assert sorted(k.index for k in third) == list(range(6)) and third != first
    fresh = ForgetSampler(6, seed=1)
    fresh.set_epoch(3)
    assert list(fresh) == third


def test_length_grouping_cuts_padding_and_keeps_every_item_once_per_epoch():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(20, 320) for _ in range(203)]  # a TOFU-like spread
    size = 8

    def padding(order):
        batches = [order[i:i + size] for i in range(0, len(order), size)]
        padded = sum(max(lengths[k.index] for k in b) * len(b) for b in batches)
        return 1 - sum(lengths[k.index] for k in order) / padded

    plain, grouped = ForgetSampler(len(lengths), seed=2), ForgetSampler(len(lengths), seed=2)
    grouped.group_by_length(size, lambda index, epoch: lengths[index])
    for epoch in range(3):
        plain.set_epoch(epoch)
        grouped.set_epoch(epoch)
        order = list(grouped)
        assert sorted(k.index for k in order) == list(range(len(lengths)))  # every item once
        # measured where the loader cuts batches: grouping only helps if boundaries stay aligned
        assert padding(order) < 0.10 < padding(list(plain))
    grouped.set_epoch(1)
    again = ForgetSampler(len(lengths), seed=2)
    again.group_by_length(size, lambda index, epoch: lengths[index])
    again.set_epoch(1)
    assert list(again) == list(grouped)  # deterministic: a resumed run repeats it


def tofu_like(n, rng):
    return [min(323, max(16, round(rng.lognormvariate(4.9, 0.3)))) for _ in range(n)]


def test_length_matched_partners_keep_the_epochs_retain_items_and_cut_padding():
    import random

    rng = random.Random(1)
    f_len, r_len = tofu_like(200, rng), tofu_like(900, rng)
    forget = [{"forget": {"input_ids": [0] * n, "labels": [0] * n}} for n in f_len]
    retain = [{"input_ids": [0] * n, "labels": [0] * n} for n in r_len]
    plain = PairedDataset(forget, retain, seed=5)
    matched, again = PairedDataset(forget, retain, seed=5, match_lengths=True), \
        PairedDataset(forget, retain, seed=5, match_lengths=True)
    size = 8

    def padding(dataset, epoch):
        sampler = ForgetSampler(len(forget), seed=2)
        sampler.group_by_length(size, dataset.padded_length)
        sampler.set_epoch(epoch)
        order = list(sampler)
        real = padded = 0
        for start in range(0, len(order), size):
            batch = order[start:start + size]
            length = max(dataset.padded_length(k.index, k.epoch) for k in batch)
            real += sum(f_len[k.index] + r_len[dataset.retain_index(k.index, k.epoch)] for k in batch)
            padded += 2 * length * len(batch)
        return 1 - real / padded

    for epoch in range(3):
        # the same retain items as unmatched pairing, each once, only given to other forget items
        partners = [matched.retain_index(i, epoch) for i in range(200)]
        assert sorted(partners) == sorted(plain.retain_index(i, epoch) for i in range(200))
        # by rank: a longer forget item never gets a shorter partner than a shorter forget item
        ranked = sorted(range(200), key=lambda i: (f_len[i], i))
        assert all(r_len[partners[a]] <= r_len[partners[b]] for a, b in zip(ranked, ranked[1:]))
        # pure: another process, or a resumed run asking in another order, gets the same partners
        assert [again.retain_index(i, epoch) for i in reversed(range(200))][::-1] == partners
        assert padding(matched, epoch) < 0.10 < padding(plain, epoch)


def test_groups_of_similar_length_share_a_padded_length_and_a_much_shorter_one_keeps_its_own():
    from obliviate.train.data import PairedCollator, shared_lengths

    assert shared_lengths({"forget": 140, "retain": 120, "forget_idk": 45}) == \
        {"forget": 140, "retain": 140, "forget_idk": 45}
    assert shared_lengths({"forget": 30, "retain": 100, "forget_idk": 40}) == \
        {"forget": 40, "retain": 100, "forget_idk": 40}
    assert shared_lengths({"forget": 50, "retain": 100}) == {"forget": 100, "retain": 100}  # exactly half
    examples = [{"forget": {"input_ids": [1] * n, "labels": [1] * n},
                 "forget_idk": {"input_ids": [2] * 3, "labels": [2] * 3}} for n in (7, 9)]
    batch = PairedCollator(pad_id=0)(examples)
    assert batch["forget"]["input_ids"].shape == (2, 9) and batch["forget_idk"]["input_ids"].shape == (2, 3)


def test_forward_groups_runs_one_pass_per_length_and_matches_one_padded_pass():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from obliviate.data.encoding import pad_batch
    from obliviate.objectives.base import forward_groups

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2)).eval()
    rows = {"forget": [[3, 4, 5, 6, 7, 8], [3, 4, 5]], "forget_idk": [[3, 9], [3, 10]]}
    features = {g: [{"input_ids": r, "labels": [-100] + r[1:]} for r in rs] for g, rs in rows.items()}
    calls = []
    model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs["input_ids"].shape),
                                    with_kwargs=True)
    own = forward_groups(model, {g: pad_batch(f, 0) for g, f in features.items()}, ["forget", "forget_idk"])
    assert calls == [(2, 6), (2, 2)]  # a pass per length
    shared = forward_groups(model, {g: pad_batch(f, 0, length=6) for g, f in features.items()},
                            ["forget", "forget_idk"])
    assert calls[2:] == [(4, 6)]  # one pass for groups of one length
    for g in rows:  # the real tokens' numbers do not depend on the padding
        assert torch.allclose(own[g].token_nll, shared[g].token_nll[:, :own[g].token_nll.shape[1]], atol=1e-5)
        assert torch.equal(own[g].mask, shared[g].mask[:, :own[g].mask.shape[1]])
