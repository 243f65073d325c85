"""converters/tokenizer.py: SpikeGPT char vocabularies and HuggingFace tokenizers JSON."""
from __future__ import annotations

import json

import pytest
import torch

from _factories import SAMPLE_SENTENCES, random_state_dict, train_hf_tokenizer, write_char_vocab
from converters.tokenizer import CharTokenizer, HFTokenizer, load_tokenizer
from spike2loihi.errors import TokenizerError

# A vocabulary like the book model's: newline and space first, ASCII, then non-ASCII
# characters (Latin-1, a BMP symbol, an astral emoji that UTF-16 stores as a surrogate pair).
CHARS = sorted(set("\n abcdefghijklmnopqrstuvwxyzT.,!'éü€😀"))
TEXT = "The café, über alles!\nno €, 😀 'yes'."


def one_line_error(excinfo, path, *fragments):
    err = excinfo.value
    assert type(err) is TokenizerError, f"{type(err).__name__}: {err}"
    msg = str(err)
    assert msg.strip() and "\n" not in msg and "\r" not in msg, f"not one line: {msg!r}"
    if path is not None:
        assert str(path) in msg, f"message does not name {path}: {msg}"
        msg = msg.replace(str(path), "<path>")  # fragments must come from the message, not the path
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in message: {msg}"
    return msg


def official_trainer_write(path, chars):
    """Exactly what SpikeGPT's trainer does with its vocabulary."""
    xx = 0
    xxObj = {}
    for u in chars:
        xxObj[xx] = u
        xx += 1
    with open(path, "w", encoding="utf-16") as vocab_file:
        vocab_file.write(json.dumps(xxObj, ensure_ascii=False))
    return path


# --------------------------------------------------------------------------- char vocabularies


def test_official_utf16_vocab_with_bom(tmp_path):
    path = official_trainer_write(tmp_path / "vocab.json", CHARS)
    raw = path.read_bytes()
    assert raw[:2] in (b"\xff\xfe", b"\xfe\xff")  # the file really is UTF-16 with a BOM
    tok = load_tokenizer(path)
    assert isinstance(tok, CharTokenizer) and tok.kind == "char"
    assert tok.path == str(path)
    assert tok.vocab_size == len(CHARS)
    assert tok.itos == dict(enumerate(CHARS))
    ids = tok.encode(TEXT)
    assert len(ids) == len(TEXT)  # one token per character, the emoji included
    assert ids[:3] == [CHARS.index("T"), CHARS.index("h"), CHARS.index("e")]
    assert tok.decode(ids) == TEXT


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8", "utf-8-sig", "utf-16-le", "utf-16-be"])
def test_vocab_in_each_encoding(tmp_path, encoding):
    path = write_char_vocab(tmp_path / "vocab.json", CHARS, encoding=encoding)
    tok = load_tokenizer(path)
    assert tok.itos == dict(enumerate(CHARS))
    assert tok.decode(tok.encode(TEXT)) == TEXT


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_ascii_vocab_in_utf16_without_bom(tmp_path, encoding):
    chars = sorted(set("\n abc"))
    path = write_char_vocab(tmp_path / "vocab.json", chars, encoding=encoding)
    assert load_tokenizer(path).itos == dict(enumerate(chars))


def test_vocab_built_and_saved_like_the_trainer(tmp_path):
    text = "\n".join(SAMPLE_SENTENCES)
    tok = CharTokenizer.from_text(text)
    assert [tok.itos[i] for i in range(tok.vocab_size)] == sorted(set(text))
    path = tmp_path / "vocab.json"
    tok.save(path)
    assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    back = load_tokenizer(path)
    assert back.itos == tok.itos
    assert back.encode(text) == tok.encode(text)
    assert back.decode(back.encode(text)) == text


def test_unknown_characters_map_to_space(tmp_path):
    tok = load_tokenizer(write_char_vocab(tmp_path / "vocab.json", CHARS))
    ids = tok.encode("a#b\u4e2d")  # '#' and a CJK character are not in the vocabulary
    space = CHARS.index(" ")
    assert ids == [CHARS.index("a"), space, CHARS.index("b"), space]
    assert tok.decode(ids) == "a b "


def test_configured_fallback_character(tmp_path):
    path = write_char_vocab(tmp_path / "vocab.json", CHARS)
    tok = load_tokenizer(path, unknown_char=".")
    assert tok.encode("a#") == [CHARS.index("a"), CHARS.index(".")]


def test_no_fallback_means_a_clear_error(tmp_path):
    chars = sorted(set("abc\n"))  # no ' '
    path = write_char_vocab(tmp_path / "vocab.json", chars)
    tok = load_tokenizer(path)
    assert tok.decode(tok.encode("ab\nc")) == "ab\nc"  # known characters still work
    with pytest.raises(TokenizerError) as excinfo:
        tok.encode("ab z")
    one_line_error(excinfo, path, "' '")
    with pytest.raises(TokenizerError) as excinfo:
        tok.encode("a\u4e2d")
    one_line_error(excinfo, path, repr("\u4e2d"))


def test_fallback_disabled_explicitly(tmp_path):
    path = write_char_vocab(tmp_path / "vocab.json", CHARS)
    tok = load_tokenizer(path, unknown_char=None)
    with pytest.raises(TokenizerError) as excinfo:
        tok.encode("a#")
    one_line_error(excinfo, path, "'#'")


@pytest.mark.parametrize("bad_id", [len(CHARS), 10_000, -1])
def test_decoding_an_id_outside_the_vocabulary(tmp_path, bad_id):
    path = write_char_vocab(tmp_path / "vocab.json", CHARS)
    tok = load_tokenizer(path)
    with pytest.raises(TokenizerError) as excinfo:
        tok.decode([0, bad_id])
    one_line_error(excinfo, path, str(bad_id))


def test_decode_accepts_tensor_ids(tmp_path):
    tok = load_tokenizer(write_char_vocab(tmp_path / "vocab.json", CHARS))
    ids = tok.encode(TEXT)
    assert tok.decode(torch.tensor(ids)) == TEXT


# --------------------------------------------------------------------------- malformed files


def _json(obj, encoding="utf-8"):
    return json.dumps(obj, ensure_ascii=False).encode(encoding)


# name: (file bytes, fragments the message must hold besides the path)
MALFORMED = {
    "non_digit_key": (_json({"0": "a", "x": "b"}), ["'x'"]),
    "superscript_digit_key": (_json({"0": "a", "\u00b2": "b"}), ["'\u00b2'"]),
    "arabic_digit_key": (_json({"0": "a", "\u0661": "b"}), ["'\u0661'"]),
    "leading_zero_key": (_json({"0": "a", "1": "b", "01": "c"}), ["'01'"]),
    "negative_key": (_json({"-1": "a", "0": "b"}), ["'-1'"]),
    "multi_char_value": (_json({"0": "a", "1": "ab"}, "utf-16"), ["'ab'"]),
    "empty_value": (_json({"0": "a", "1": ""}), ["''", "'1'"]),
    "number_value": (_json({"0": "a", "1": 5}), ["5", "'1'"]),
    "null_value": (_json({"0": None}), ["None"]),
    "gap_in_indices": (_json({"0": "a", "1": "b", "3": "c"}), ["2"]),
    "duplicate_chars": (_json({"0": "a", "1": "b", "2": "a"}, "utf-16"), ["'a'", "0", "2"]),
    "not_json": (b"this is not JSON at all\n", ["JSON"]),
    "truncated_json": (b'{"0": "a", "1": ', ["JSON"]),
    "json_list": (_json(["a", "b"]), ["object"]),
    "json_string": (_json("abc"), ["object"]),
    "empty_object": (b"{}", []),
    "empty_file": (b"", []),
    "deeply_nested": (b"[" * 100_000 + b"]" * 100_000, []),
    "latin1_bytes": ('{"0": "\u00e9"}'.encode("latin-1"), ["UTF"]),
    "broken_utf16": (b"\xff\xfe{\x00\"\x00\x00\xd8", ["UTF"]),
    "binary_garbage": (bytes(range(256)) * 4, []),
    "bad_tokenizers_json": (_json({"model": {"type": "NoSuchModel"}, "version": "1.0"}), ["tokenizers"]),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_vocabulary_is_a_one_line_error(tmp_path, case):
    data, fragments = MALFORMED[case]
    path = tmp_path / f"{case}.json"
    path.write_bytes(data)
    with pytest.raises(TokenizerError) as excinfo:
        load_tokenizer(path)
    one_line_error(excinfo, path, *fragments)


def test_checkpoint_given_as_tokenizer(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(random_state_dict(1, 4, 3, seed=0), path)
    with pytest.raises(TokenizerError) as excinfo:
        load_tokenizer(path)
    one_line_error(excinfo, path)


def test_directory_and_missing_file(tmp_path):
    for path in (tmp_path, tmp_path / "absent.json"):
        with pytest.raises(TokenizerError) as excinfo:
            load_tokenizer(path)
        one_line_error(excinfo, path)


# --------------------------------------------------------------------------- HuggingFace tokenizers


def test_byte_level_bpe_tokenizer(tmp_path):
    path = tmp_path / "20B_like_tokenizer.json"
    trained = train_hf_tokenizer(path, "bpe")
    tok = load_tokenizer(path)
    assert isinstance(tok, HFTokenizer) and tok.kind == "huggingface"
    assert tok.path == str(path)
    assert tok.vocab_size == trained.get_vocab_size(with_added_tokens=True)
    assert tok.vocab_size > 256 + 1  # byte alphabet, the special token, and learned merges
    for text in SAMPLE_SENTENCES + ["naïve café 😀 — unseen words zyxq\n\ttabs"]:
        ids = tok.encode(text)
        assert ids == trained.encode(text).ids
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
    assert len(tok.encode(SAMPLE_SENTENCES[0])) < len(SAMPLE_SENTENCES[0])  # merges are used


def test_added_tokens_count_in_vocab_size(tmp_path):
    path = tmp_path / "tokenizer.json"
    trained = train_hf_tokenizer(None, "bpe")
    base = trained.get_vocab_size(with_added_tokens=True)
    trained.add_tokens(["<|padding|>"])
    trained.save(str(path))
    tok = load_tokenizer(path)
    assert tok.vocab_size == base + 1
    assert tok.encode("<|padding|>") == [base]


def test_word_level_tokenizer(tmp_path):
    path = tmp_path / "words.json"
    trained = train_hf_tokenizer(path, "wordlevel")
    tok = load_tokenizer(path)
    assert isinstance(tok, HFTokenizer)
    assert tok.vocab_size == trained.get_vocab_size(with_added_tokens=True)
    text = "the cat sat on the mat"
    ids = tok.encode(text)
    assert len(ids) == 6 and ids[0] == ids[4]
    assert tok.decode(ids) == text
    assert tok.encode("zebra") == [trained.token_to_id("[UNK]")]


def test_tokenizers_json_with_utf8_bom(tmp_path):
    trained = train_hf_tokenizer(None, "wordlevel")
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + trained.to_str().encode("utf-8"))
    tok = load_tokenizer(path)
    assert isinstance(tok, HFTokenizer)
    assert tok.vocab_size == trained.get_vocab_size(with_added_tokens=True)
