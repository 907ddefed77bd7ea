"""Refuse a broken model folder before anything heavy happens, in one line.

A truncated ``model.safetensors``, a missing shard or a tokenizer bigger than the embedding matrix
otherwise surfaces minutes later as a traceback from deep inside transformers (or as an index
error mid-training). :func:`check_model_folder` reads only small JSON files and safetensors
headers (8 bytes of length, then JSON), never weights, so every loader can call it first.

It knows the folders :func:`obliviate.models.loading.load_model` loads: plain ``save_pretrained``
folders (one ``model.safetensors`` or shards with ``model.safetensors.index.json``), PEFT adapter
folders (``adapter_config.json``), composed models (``composition.json`` and ``assistant/``) and
EUL adapters (``eul_adapter.json``). Models a folder points at (a base, an assistant) are checked
too when they are local; hub ids cannot be checked offline and are left to the loader.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obliviate.errors import ConfigError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
TOKENIZER = "tokenizer.json"
TOKENIZER_JSONS = ("tokenizer_config.json", "special_tokens_map.json")
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
COMPOSITION = "composition.json"  # obliviate.models.composed_io.COMPOSITION_FILE
ASSISTANT = "assistant"  # obliviate.models.composed_io.ASSISTANT_DIR
EUL_CONFIG = "eul_adapter.json"  # obliviate.models.bottleneck.ADAPTER_FILE
EUL_WEIGHTS = "eul_adapter.safetensors"  # obliviate.models.bottleneck.WEIGHTS_FILE
EUL_GRAMS = "eul_grams.safetensors"  # obliviate.models.bottleneck.GRAMS_FILE

#: the safetensors library refuses headers above 100 MB
MAX_HEADER_BYTES = 100_000_000
#: bytes per element of the safetensors dtypes with whole-byte elements (sub-byte ones are not checked)
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "U16": 2, "I16": 2,
               "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8, "C64": 8}
#: weight files of other formats, which obliviate does not load (pickles can run code when loaded)
UNSAFE_WEIGHTS = ("pytorch_model.bin", "adapter_model.bin", "tf_model.h5", "flax_model.msgpack", "model.ckpt.index")
RESAVE = "re-save the model with save_pretrained"
CONVERT = ("obliviate loads safetensors only (pickle files can run code when loaded); convert it once: "
           "load it in transformers and save_pretrained(folder, safe_serialization=True)")


# ---- small readers ------------------------------------------------------------------------------

def looks_local(name: str) -> bool:
    """A name meant as a path rather than a hub id (``owner/name``): it starts with ``.``, ``/`` or
    ``~``, or has more than one path separator."""
    return name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1]


def read_json_file(path: Path, owner: str, fix: str = RESAVE) -> Any:
    """A small JSON file, or a one-line error naming it (``owner`` is the folder it belongs to)."""
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{owner}: {path.name} is not UTF-8 text (bad byte at offset {exc.start}); {fix}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{owner}: {path.name} is not valid JSON ({exc.msg}: line {exc.lineno}, column "
                          f"{exc.colno}); it is truncated or damaged, {fix}") from None
    except OSError as exc:
        raise ConfigError(f"{owner}: cannot read {path.name} ({exc.strerror or exc}); check its permissions") from None


def _json_object(path: Path, owner: str, fix: str = RESAVE) -> dict[str, Any]:
    data = read_json_file(path, owner, fix)
    if not isinstance(data, dict):
        raise ConfigError(f"{owner}: {path.name} holds a JSON {type(data).__name__}, not an object; {fix}")
    return data


def _bad_file(owner: str, name: str, what: str) -> ConfigError:
    return ConfigError(f"{owner}: {name} is {what}; {RESAVE}")


def _header_bytes(path: Path, owner: str) -> tuple[bytes, int]:
    """The raw JSON header of a safetensors file and the file size, after the length check."""
    size = path.stat().st_size
    if size < 8:
        raise _bad_file(owner, path.name, f"not a safetensors file (only {size} bytes)")
    with open(path, "rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        if length > MAX_HEADER_BYTES:
            raise _bad_file(owner, path.name, f"not a safetensors file (its first 8 bytes give a header length "
                                              f"of {length} bytes, the file has {size})")
        if length > size - 8:
            raise _bad_file(owner, path.name, f"truncated or not a safetensors file (its header alone should be "
                                              f"{length} bytes, the whole file has {size})")
        return fh.read(length), size


def _tensor_end(name: str, info: Any, path: Path, owner: str) -> tuple[int, int]:
    """The data offsets of one header entry, checked against its dtype and shape."""
    damaged = f"damaged (tensor {name!r} has a malformed header entry)"
    if not isinstance(info, dict):
        raise _bad_file(owner, path.name, damaged)
    shape, offsets, dtype = info.get("shape"), info.get("data_offsets"), info.get("dtype")
    if (not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape)
            or not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets) or not 0 <= offsets[0] <= offsets[1]
            or not isinstance(dtype, str)):
        raise _bad_file(owner, path.name, damaged)
    if dtype in DTYPE_BYTES:
        numel = 1
        for d in shape:
            numel *= d
        if numel * DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
            raise _bad_file(owner, path.name, f"damaged (tensor {name!r}: {dtype} {shape} needs "
                                              f"{numel * DTYPE_BYTES[dtype]} bytes, its offsets give "
                                              f"{offsets[1] - offsets[0]})")
    return offsets[0], offsets[1]


def read_safetensors_header(path: str | os.PathLike, owner: str | None = None) -> dict[str, Any]:
    """The tensors a safetensors file holds (name -> dtype, shape, offsets), read from its header
    only; refuses (one line) a file that is truncated, padded or not safetensors at all, the
    problems the library would otherwise report only when the weights are loaded."""
    path = Path(path)
    owner = owner or f"model {path.parent}"
    raw, size = _header_bytes(path, owner)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _bad_file(owner, path.name, "damaged (its header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise _bad_file(owner, path.name, "damaged (its header is not a JSON object)")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    spans = sorted(_tensor_end(name, info, path, owner) for name, info in tensors.items())
    position = 0
    for start, end in spans:
        if start != position:
            raise _bad_file(owner, path.name, "damaged (its tensors overlap or leave gaps)")
        position = end
    expected = 8 + len(raw) + position
    if size < expected:
        raise _bad_file(owner, path.name, f"truncated (header says {expected} bytes, file has {size})")
    if size > expected:
        raise _bad_file(owner, path.name, f"damaged ({size - expected} stray bytes after its last tensor; "
                                          f"header says {expected} bytes, file has {size})")
    return tensors


# ---- what each kind of folder must hold -----------------------------------------------------------

@dataclass(frozen=True)
class _Member:
    """A model a folder needs: its role in messages, its path or hub id, whether its embedding
    size bounds the folder's tokenizer, and whether the models it names are checked in turn."""

    role: str
    ref: str
    counts: bool = True
    follow: bool = True


Members = tuple[_Member, ...]


@dataclass(frozen=True)
class _Scan:
    """What a folder's own files say: embedding sizes they give, the models it also needs, and
    its tokenizer's size (None: no fast tokenizer to measure)."""

    vocab: tuple[int, ...]
    members: Members
    tokenizer: int | None


def _vocab_size(config: dict[str, Any]) -> int | None:
    """``vocab_size`` of a config.json, or of its text part (multimodal configs nest it)."""
    for section in (config, config.get("text_config") or {}):
        value = section.get("vocab_size") if isinstance(section, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None


def _unsafe_only(folder: Path, names: set[str]) -> str | None:
    """The first non-safetensors weight file of a folder, if it has one."""
    for name in sorted(names):
        if name in UNSAFE_WEIGHTS or (name.startswith("pytorch_model-") and name.endswith(".bin")):
            return name
    return None


def _check_shards(folder: Path, owner: str) -> None:
    index = _json_object(folder / INDEX, owner)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ConfigError(f"{owner}: {INDEX} has no weight_map; {RESAVE}")
    wanted: dict[str, set[str]] = {}
    for tensor, shard in weight_map.items():
        wanted.setdefault(str(shard), set()).add(tensor)
    for shard in sorted(wanted):
        path = folder / shard
        if not path.is_file():
            raise ConfigError(f"{owner}: {shard} is missing ({INDEX} lists it); copy the missing shard "
                              "into the folder or re-save the model")
        absent = sorted(wanted[shard] - set(read_safetensors_header(path, owner)))
        if absent:
            raise ConfigError(f"{owner}: {shard} lacks {len(absent)} tensor(s) {INDEX} puts there "
                              f"(first: {absent[0]}); it is from another save, {RESAVE}")


def _check_weights(folder: Path, owner: str, names: set[str]) -> None:
    if INDEX in names:
        _check_shards(folder, owner)
    elif WEIGHTS in names:
        read_safetensors_header(folder / WEIGHTS, owner)
    elif any(n.startswith("model-") and n.endswith(".safetensors") for n in names):
        raise ConfigError(f"{owner}: has model-*.safetensors shards but no {INDEX}; copy the index file "
                          "from where the model was saved")
    elif unsafe := _unsafe_only(folder, names):
        raise ConfigError(f"{owner}: has only {unsafe}, no {WEIGHTS}; {CONVERT}")
    else:
        raise ConfigError(f"{owner}: no {WEIGHTS} (or shards with {INDEX}); give a folder saved with "
                          "save_pretrained")


def _scan_plain(folder: Path, owner: str, names: set[str]) -> tuple[tuple[int, ...], Members]:
    if CONFIG not in names:
        model_like = (names & {WEIGHTS, INDEX} or _unsafe_only(folder, names)
                      or any(n.startswith("model-") and n.endswith(".safetensors") for n in names))
        what = (f"no {CONFIG} next to its weights; copy it from where the model came from or {RESAVE}"
                if model_like else f"not a model folder (no {CONFIG}, no {WEIGHTS}); give a folder saved "
                "with save_pretrained, or a hub id")
        raise ConfigError(f"{owner}: {what}")
    vocab = _vocab_size(_json_object(folder / CONFIG, owner))
    _check_weights(folder, owner, names)
    return ((vocab,) if vocab else ()), ()


def _scan_peft(folder: Path, owner: str, names: set[str]) -> tuple[tuple[int, ...], Members]:
    config = _json_object(folder / PEFT_CONFIG, owner, "re-save the adapter with save_pretrained")
    if PEFT_WEIGHTS not in names:
        if "adapter_model.bin" in names:
            raise ConfigError(f"{owner}: has only adapter_model.bin, no {PEFT_WEIGHTS}; {CONVERT}")
        raise ConfigError(f"{owner}: has {PEFT_CONFIG} but no {PEFT_WEIGHTS}; copy the adapter weights or "
                          "re-save the adapter with save_pretrained")
    tensors = read_safetensors_header(folder / PEFT_WEIGHTS, owner)
    # an adapter that saved resized embeddings (modules_to_save) brings its own vocabulary size
    rows = [info["shape"][0] for name, info in tensors.items()
            if "embed" in name and name.endswith(".weight") and len(info["shape"]) == 2]
    base = config.get("base_model_name_or_path")
    members = (_Member("base model", base, counts=not rows),) if isinstance(base, str) and base else ()
    return tuple(rows[:1]), members


def _scan_composed(folder: Path, owner: str, names: set[str]) -> tuple[tuple[int, ...], Members]:
    spec = _json_object(folder / COMPOSITION, owner, "re-save the composed model")
    base, assistant = spec.get("base"), spec.get("assistant")
    if spec.get("type") not in ("logit_diff", "offset") or not isinstance(base, str) or not base:
        raise ConfigError(f"{owner}: {COMPOSITION} is not a valid composition file (it needs 'type' logit_diff "
                          "or offset and the 'base' model); re-save the composed model")
    if not (folder / ASSISTANT).is_dir():
        raise ConfigError(f"{owner}: {ASSISTANT}/ is missing; the composed model needs its trained assistant "
                          "(copy the whole folder)")
    # the assistant loads on the composition's base (an adapter's own base reference is not used)
    members = [_Member("base model", base), _Member("assistant", str(folder / ASSISTANT), follow=False)]
    if isinstance(assistant, dict) and isinstance(assistant.get("path"), str) and assistant["path"]:
        members.append(_Member("reference assistant", assistant["path"]))
    return (), tuple(members)


def _scan_eul(folder: Path, owner: str, names: set[str]) -> tuple[tuple[int, ...], Members]:
    spec = _json_object(folder / EUL_CONFIG, owner, "re-save the unlearning adapter")
    base = spec.get("base")
    if not isinstance(spec.get("modules"), list) or not isinstance(base, str) or not base:
        raise ConfigError(f"{owner}: {EUL_CONFIG} is not a valid unlearning-adapter file (it needs 'modules' "
                          "and the 'base' model); re-save the unlearning adapter")
    if EUL_WEIGHTS not in names:
        raise ConfigError(f"{owner}: has {EUL_CONFIG} but no {EUL_WEIGHTS}; copy the adapter weights")
    read_safetensors_header(folder / EUL_WEIGHTS, owner)
    if EUL_GRAMS in names:
        read_safetensors_header(folder / EUL_GRAMS, owner)
    return (), (_Member("base model", base),)


TOKENIZER_FIX = "re-save the tokenizer with save_pretrained"


def _unk_names(config: dict[str, Any]) -> set[str]:
    token = config.get("unk_token")
    content = token.get("content") if isinstance(token, dict) else token
    return {content} if isinstance(content, str) else set()


def _side_files(folder: Path, owner: str) -> tuple[list[tuple[int, str]], set[str]]:
    """The tokens tokenizer_config.json adds (``added_tokens_decoder``: id, text) and the unknown
    token it names, after checking the small tokenizer JSON files parse."""
    added: list[tuple[int, str]] = []
    unk: set[str] = set()
    for name in TOKENIZER_JSONS:
        if not (folder / name).is_file():
            continue
        data = read_json_file(folder / name, owner, TOKENIZER_FIX)
        if not isinstance(data, dict):
            continue
        unk |= _unk_names(data)
        decoder = data.get("added_tokens_decoder")
        if isinstance(decoder, dict):
            added += [(int(k), str(v.get("content")) if isinstance(v, dict) else "")
                      for k, v in decoder.items() if str(k).isdigit()]
    return added, unk


def _never_unknown(tokenizer: dict[str, Any]) -> bool:
    """A byte-level (or byte-fallback) tokenizer encodes every input, so it never emits its
    unknown token: an unknown token past the embeddings (transformers 5 adds one when a folder is
    re-saved through some tokenizer classes) cannot reach them."""
    def kinds(part: Any) -> list[Any]:
        if not isinstance(part, dict):
            return []
        subs = part.get("pretokenizers") or part.get("decoders") or []
        return [part.get("type"), *(k for sub in subs for k in kinds(sub))]

    model = tokenizer.get("model")
    if isinstance(model, dict) and model.get("byte_fallback"):
        return True
    return "ByteLevel" in kinds(tokenizer.get("pre_tokenizer")) + kinds(tokenizer.get("decoder"))


def tokenizer_size(folder: str | os.PathLike, owner: str | None = None) -> int | None:
    """How many token ids a folder's fast tokenizer can produce (highest id + 1, over the model's
    vocabulary and the added tokens), or None when the folder has no ``tokenizer.json``. A
    tokenizer.json that does not parse is refused here, before transformers reports it vaguely."""
    folder = Path(folder)
    owner = owner or f"model {folder}"
    extra, unk = _side_files(folder, owner)
    if not (folder / TOKENIZER).is_file():
        return None
    data = _json_object(folder / TOKENIZER, owner, TOKENIZER_FIX)
    model = data.get("model")
    vocab = model.get("vocab") if isinstance(model, dict) else None
    added = data.get("added_tokens", [])
    if not isinstance(vocab, (dict, list)) or not isinstance(added, list):
        raise ConfigError(f"{owner}: {TOKENIZER} is damaged (no model vocabulary); {TOKENIZER_FIX}")
    try:
        ids = list(vocab.values()) if isinstance(vocab, dict) else [len(vocab) - 1] if vocab else []
        tokens = [(int(token["id"]), str(token.get("content"))) for token in added] + extra
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{owner}: {TOKENIZER} is damaged (a token without an integer id); {TOKENIZER_FIX}") from None
    skip = unk if _never_unknown(data) else set()
    ids += [i for i, content in tokens if content not in skip]
    try:
        return max(int(i) for i in ids) + 1 if ids else None
    except (TypeError, ValueError):
        raise ConfigError(f"{owner}: {TOKENIZER} is damaged (a token without an integer id); {TOKENIZER_FIX}") from None


# ---- putting it together ----------------------------------------------------------------------

_SCANNERS = ((COMPOSITION, _scan_composed), (EUL_CONFIG, _scan_eul), (PEFT_CONFIG, _scan_peft))
_CACHE: dict[tuple[str, tuple], _Scan] = {}


def _signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, size and modification time of each entry: a folder rescanned only when it changed."""
    out = []
    for entry in os.scandir(folder):
        try:
            stat = entry.stat()
            out.append((entry.name, stat.st_size, stat.st_mtime_ns))
        except OSError:  # a dangling link: listed, so the checks below name it
            out.append((entry.name, -1, -1))
    return tuple(sorted(out))


def _scan(folder: Path) -> _Scan:
    """Check a folder's own files (cached while they are unchanged)."""
    key = (str(folder.resolve()), _signature(folder))
    if key in _CACHE:
        return _CACHE[key]
    owner = f"model {folder}"
    names = {n for n, _, _ in key[1]}
    if not names:
        raise ConfigError(f"{owner}: the folder is empty; give a folder saved with save_pretrained "
                          f"({CONFIG}, {WEIGHTS}, tokenizer) or a hub id")
    scanner = next((fn for marker, fn in _SCANNERS if marker in names), _scan_plain)
    vocab, members = scanner(folder, owner, names)
    result = _Scan(vocab, members, tokenizer_size(folder, owner))
    if len(_CACHE) > 256:
        _CACHE.clear()
    _CACHE[key] = result
    return result


def _member_vocab(folder: Path, member: _Member, stack: tuple[str, ...]) -> tuple[int, ...]:
    """Check a model a folder points at (when local) and return its embedding sizes."""
    path = Path(member.ref).expanduser()
    if not path.exists():
        if looks_local(member.ref):
            raise ConfigError(f"model {folder}: its {member.role} {member.ref} is missing; the folder needs it "
                              "(restore it, or re-create the model from where it is now)")
        return ()  # a hub id: the loader fetches and checks it
    try:
        vocab = _check(path, stack, follow=member.follow)
    except ConfigError as exc:
        raise ConfigError(f"model {folder}: its {member.role} is broken: {exc}") from None
    return vocab if member.counts else ()


def _check(path: Path, stack: tuple[str, ...] = (), *, follow: bool = True) -> tuple[int, ...]:
    """Check a local folder and the local models it needs; its embedding sizes (for members)."""
    if not path.is_dir():
        raise ConfigError(f"model {path}: this is a file, not a folder; give the folder that holds {CONFIG} "
                          f"and {WEIGHTS} (or a hub id)")
    resolved = str(path.resolve())
    if resolved in stack:
        raise ConfigError(f"model {path}: points at itself through its base models; fix the base it names")
    scan = _scan(path)
    vocab = list(scan.vocab)
    for member in scan.members if follow else ():
        vocab.extend(_member_vocab(path, member, (*stack, resolved)))
    if scan.tokenizer is not None and vocab and scan.tokenizer > min(vocab):
        raise ConfigError(f"model {path}: the tokenizer ({TOKENIZER}) has {scan.tokenizer} tokens but the model's "
                          f"embedding matrix has only {min(vocab)} rows (vocab_size); use the tokenizer the "
                          "model was trained with, or resize the embeddings and re-save")
    return tuple(vocab)


def check_model_folder(path: str | os.PathLike) -> None:
    """Refuse (:class:`ConfigError`, one line naming the folder and file) a local model folder that
    cannot load: nothing or a file at the path, no config.json, truncated or damaged safetensors,
    a missing shard, only pickle weights, a damaged tokenizer, a tokenizer larger than the
    embedding matrix, or a missing/broken base model of an adapter or composed model. Hub ids pass
    untouched. Reads headers and small JSON files only; results are cached while files are
    unchanged, so calling it from both loaders costs nothing the second time."""
    name = os.fspath(path)
    local = Path(name).expanduser()
    if not local.exists():
        if looks_local(name):
            raise ConfigError(f"model {name}: no such folder; give a saved model folder or a hub id")
        return
    _check(local)


def local_model_files(path: str | os.PathLike) -> list[Path]:
    """The safetensors files holding a local model's weights (shards in index order), following
    an adapter folder to its local base; empty for a hub id or a composed model."""
    folder = Path(os.fspath(path)).expanduser()
    if not folder.is_dir() or (folder / COMPOSITION).is_file():
        return []
    for marker, key in ((PEFT_CONFIG, "base_model_name_or_path"), (EUL_CONFIG, "base")):
        if (folder / marker).is_file():
            ref = _json_object(folder / marker, f"model {folder}").get(key)
            return local_model_files(ref) if isinstance(ref, str) and ref else []
    if (folder / INDEX).is_file():
        weight_map = _json_object(folder / INDEX, f"model {folder}").get("weight_map") or {}
        return [folder / shard for shard in dict.fromkeys(weight_map.values())]
    return [folder / WEIGHTS] if (folder / WEIGHTS).is_file() else []


__all__ = ["check_model_folder", "local_model_files", "looks_local", "read_safetensors_header", "tokenizer_size"]
