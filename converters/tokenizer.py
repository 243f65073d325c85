"""Tokenizer files: SpikeGPT's char vocabulary JSON and HuggingFace tokenizers JSON.

The official trainer writes `vocab.json` as {"0": "\\n", "1": " ", ...} in UTF-16
with a BOM; UTF-8 files are accepted too. The 216M model uses the GPT-NeoX 20B
tokenizer, a `tokenizers` JSON file.

A tokenizer file is read as hostile (`spike2loihi.inputs.read_input_bytes`): a regular
file of at most `MAX_TOKENIZER_BYTES`, a named pipe or a device refused unread. A
tokenizer embedded in a converted model is named as such in messages, not by the file
name it was once read from.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from spike2loihi.errors import InputFileError, TokenizerError
from spike2loihi.inputs import MAX_TOKENIZER_BYTES, read_input_bytes, regular_file

DEFAULT_UNKNOWN_CHAR = " "  # what the official book model maps unknown characters to


EMBEDDED = "the model's embedded tokenizer"


def _decode_text(path, raw: bytes) -> str:
    """`raw` decoded (UTF-16 with or without a BOM, UTF-8); `path` labels it in the error."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        enc = "utf-16"
    elif raw.startswith(b"\xef\xbb\xbf"):
        enc = "utf-8-sig"
    # UTF-16 without a BOM: JSON text starts with an ASCII character, so one of its
    # first two bytes is NUL (which UTF-8 JSON never has there).
    elif raw[:2].endswith(b"\x00") and not raw.startswith(b"\x00"):
        enc = "utf-16-le"
    elif raw.startswith(b"\x00") and raw[1:2] not in (b"", b"\x00"):
        enc = "utf-16-be"
    else:
        enc = "utf-8"
    try:
        return raw.decode(enc)
    except UnicodeDecodeError as exc:
        raise TokenizerError(f"{path}: neither UTF-8 nor UTF-16 text "
                             f"({enc} decoding fails at byte {exc.start})") from None


class CharTokenizer:
    """One token per character, as SpikeGPT's char models use."""

    kind = "char"

    def __init__(self, itos: Dict[int, str], path: str = "", unknown_char: Optional[str] = DEFAULT_UNKNOWN_CHAR,
                 label: Optional[str] = None):
        self.path = path
        self.label = label or path  # how messages name it (an embedded tokenizer has no file)
        self.itos = dict(itos)
        self.stoi = {c: i for i, c in self.itos.items()}
        self.unknown_id = self.stoi.get(unknown_char) if unknown_char is not None else None

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list:
        ids = []
        for ch in text:
            i = self.stoi.get(ch, self.unknown_id)
            if i is None:
                raise TokenizerError(f"{self.label}: character {ch!r} is not in the vocabulary "
                                     "and the vocabulary has no fallback character")
            ids.append(i)
        return ids

    @property
    def unknown_token(self) -> Optional[str]:
        """The fallback character unknown characters become (None: they are refused)."""
        return None if self.unknown_id is None else self.itos[self.unknown_id]

    def encode_with_report(self, text: str) -> Tuple[list, List[str], List[str]]:
        """`encode(text)`, also saying which characters are not in the vocabulary.

        Returns (ids, replaced, dropped): `replaced` lists, in order and with repeats,
        the characters encoded as the fallback `unknown_token`. A char vocabulary drops
        nothing (without a fallback it raises, as `encode` does), so `dropped` is [].
        """
        ids, replaced = [], []
        for ch in text:
            i = self.stoi.get(ch)
            if i is None:
                if self.unknown_id is None:
                    return self.encode(text), [], []  # raises the error `encode` gives
                i = self.unknown_id
                replaced.append(ch)
            ids.append(i)
        return ids, replaced, []

    def decode(self, ids) -> str:
        try:
            return "".join(self.itos[int(i)] for i in ids)
        except KeyError as exc:
            raise TokenizerError(f"{self.label}: token id {exc.args[0]} is outside the vocabulary "
                                 f"(0..{self.vocab_size - 1})") from None

    def to_json_text(self) -> str:
        return json.dumps({str(i): self.itos[i] for i in sorted(self.itos)}, ensure_ascii=False)

    @classmethod
    def from_text(cls, text: str, path: str = "") -> "CharTokenizer":
        """Vocabulary of a training text: its sorted unique characters (official trainer)."""
        return cls(dict(enumerate(sorted(set(text)))), path=path)

    def save(self, path) -> None:
        """Write in the official format: UTF-16 with a BOM."""
        from spike2loihi.fileio import write_text_atomic

        write_text_atomic(path, self.to_json_text(), encoding="utf-16")


class HFTokenizer:
    """A HuggingFace `tokenizers` JSON file (e.g. GPT-NeoX 20B, vocabulary 50277)."""

    kind = "huggingface"

    def __init__(self, tok, path: str = "", label: Optional[str] = None):
        self.tok = tok
        self.path = path
        self.label = label or path  # how messages name it (an embedded tokenizer has no file)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list:
        return list(self.tok.encode(text).ids)

    @property
    def unknown_id(self) -> Optional[int]:
        """Id of the model's unknown token ("[UNK]", "<unk>", ...), None if it has none."""
        if not hasattr(self, "_unknown_id"):
            try:
                model = json.loads(self.tok.to_str()).get("model", {})
            except (ValueError, AttributeError, TypeError):
                model = {}
            unk = model.get("unk_token")
            uid = self.tok.token_to_id(unk) if isinstance(unk, str) else None
            if uid is None and isinstance(model.get("unk_id"), int):  # Unigram
                uid = model["unk_id"]
            self._unknown_id = uid
        return self._unknown_id

    @property
    def unknown_token(self) -> Optional[str]:
        uid = self.unknown_id
        return None if uid is None else self.tok.id_to_token(uid)

    def encode_with_report(self, text: str) -> Tuple[list, List[str], List[str]]:
        """`encode(text)`, also saying which parts of `text` the vocabulary does not cover.

        Returns (ids, replaced, dropped): `replaced` lists the pieces of text encoded as
        the unknown token (whole words for a word-level model); `dropped` lists, in
        order and with repeats, the non-whitespace characters that no token covers
        (a model without an unknown token skips characters it does not know).
        Whitespace that the pre-tokenizer splits on is not reported.
        """
        enc = self.tok.encode(text)
        ids = list(enc.ids)
        unk = self.unknown_id
        covered = bytearray(len(text))
        replaced = []
        for i, (a, b) in zip(ids, enc.offsets):
            covered[a:b] = b"\x01" * max(0, min(b, len(text)) - a)
            if unk is not None and i == unk and b > a:
                replaced.append(text[a:b])
        dropped = [ch for ch, c in zip(text, covered) if not c and not ch.isspace()]
        return ids, replaced, dropped

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids])


def _char_vocab(path, obj: dict, unknown_char, name: Optional[str] = None) -> CharTokenizer:
    """`path` labels the vocabulary in errors; `name` (default `path`) is the tokenizer's `path`."""
    itos = {}
    for k, v in obj.items():
        # Canonical ASCII decimals only: str.isdigit() accepts '²' (int() then fails) and
        # '01', which would silently overwrite entry '1'.
        if not (isinstance(k, str) and re.fullmatch(r"0|[1-9][0-9]*", k)):
            raise TokenizerError(f"{path}: char vocabulary key {k!r} is not a decimal index")
        if not (isinstance(v, str) and len(v) == 1):
            raise TokenizerError(f"{path}: entry {k!r} maps to {v!r}, expected a single character")
        itos[int(k)] = v
    if sorted(itos) != list(range(len(itos))):
        missing = sorted(set(range(len(itos))) - set(itos))
        raise TokenizerError(f"{path}: char vocabulary indices are not 0..{len(itos) - 1} (missing {missing[:5]})")
    seen: Dict[str, int] = {}
    for i in sorted(itos):
        if itos[i] in seen:
            raise TokenizerError(f"{path}: char vocabulary maps indices {seen[itos[i]]} and {i} "
                                 f"to the same character {itos[i]!r}")
        seen[itos[i]] = i
    return CharTokenizer(itos, path=str(path if name is None else name), unknown_char=unknown_char,
                         label=str(path))


def load_tokenizer(path, unknown_char: Optional[str] = DEFAULT_UNKNOWN_CHAR):
    """Read a char vocabulary or a `tokenizers` JSON file, by its content (a regular file of at most
    MAX_TOKENIZER_BYTES: a named pipe, a device or a directory is refused unread)."""
    path = Path(path)
    try:
        raw = read_input_bytes(path, "tokenizer", MAX_TOKENIZER_BYTES)
    except InputFileError as exc:
        raise TokenizerError(str(exc)) from None
    return _parse(raw, str(path), str(path), unknown_char)


def tokenizer_from_bytes(raw: bytes, name: str = "", unknown_char: Optional[str] = DEFAULT_UNKNOWN_CHAR,
                         embedded: Optional[bool] = None):
    """A tokenizer from a file's bytes; `name` is the file name it was read from (the tokenizer's `path`).

    When `embedded` (by default: when `name` is not an existing file), the bytes came from inside a
    model (an artifact, an ONNX file), and messages call it "the model's embedded tokenizer" rather
    than name a file that is not there."""
    if embedded is None:
        embedded = not (name and regular_file(name))
    label = (f"{EMBEDDED} ({name})" if name else EMBEDDED) if embedded else name
    return _parse(raw, label, name, unknown_char)


def _parse(raw: bytes, label: str, name: str, unknown_char: Optional[str]):
    """A tokenizer of `raw` bytes: `label` names it in errors, `name` becomes its `path`."""
    path = label
    text = _decode_text(path, raw)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokenizerError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise TokenizerError(f"{path}: JSON nested too deeply to be a tokenizer file") from None
    if not isinstance(obj, dict) or not obj:
        raise TokenizerError(f"{path}: expected a JSON object (char vocabulary or tokenizers file)")
    if "model" in obj and isinstance(obj.get("model"), dict):
        try:
            from tokenizers import Tokenizer
            return HFTokenizer(Tokenizer.from_str(text), path=str(name), label=str(label))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TokenizerError(f"{path}: invalid tokenizers JSON ({first})") from None
    return _char_vocab(path, obj, unknown_char, name=name)


def artifact_tokenizer(model, unknown_char: Optional[str] = DEFAULT_UNKNOWN_CHAR):
    """The tokenizer a converted model (`ConvertedModel`) carries, or None."""
    stored = model.tokenizer_file()
    if stored is None:
        return None
    raw, name = stored
    return tokenizer_from_bytes(raw, name=name, unknown_char=unknown_char, embedded=True)
