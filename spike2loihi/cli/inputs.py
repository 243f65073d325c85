"""Reading a command's inputs, shared by several commands: a prompt encoded with the
tokenizer, a text file, a file of token ids (with warnings about characters replaced or
dropped, and one-line errors), and whether an option was given on the command line.
"""
from __future__ import annotations


from click.core import ParameterSource

from spike2loihi.cli.params import parse_int_list
from spike2loihi.cli.rules import show_examples, warn
from spike2loihi.errors import Spike2LoihiError
from spike2loihi.inputs import MAX_TEXT_BYTES, MAX_TOKENS_FILE_BYTES, read_input_text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _encode_prompt(tok, prompt: str):
    """Token ids of --prompt; warns about characters replaced or dropped, refuses a prompt with none left."""
    if prompt == "":
        raise Spike2LoihiError("--prompt is empty: at least one token is needed")
    if hasattr(tok, "encode_with_report"):
        ids, replaced, dropped = tok.encode_with_report(prompt)
    else:  # a tokenizer object of another kind
        ids, replaced, dropped = tok.encode(prompt), [], []
    unk = getattr(tok, "unknown_token", None)
    unk_id = getattr(tok, "unknown_id", None)
    what = "characters" if tok.kind == "char" else "pieces"
    if not ids and dropped:
        n = len(dropped)
        every = "its only character is" if n == 1 else f"all {n} characters are"
        raise Spike2LoihiError(f"--prompt encodes to no tokens: {every} outside the tokenizer's vocabulary and "
                               f"the tokenizer has no unknown token, so {'it was' if n == 1 else 'all were'} "
                               f"dropped: {show_examples(dropped)}")
    if ids and replaced and all(i == unk_id for i in ids):
        n = len(replaced)
        every = "every character is unknown" if n == len(ids) else f"every character is unknown or {unk!r}"
        raise Spike2LoihiError(f"--prompt has nothing in the vocabulary: {every}, and would run as {unk!r} "
                               f"({_plural(n, what[:-1])} replaced: {show_examples(replaced)})")
    if not ids:
        raise Spike2LoihiError(f"--prompt {prompt!r} encodes to no tokens: at least one token is needed")
    if replaced:
        n = len(replaced)
        warn(f"--prompt: {_plural(n, what[:-1])} not in the vocabulary {'was' if n == 1 else 'were'} "
             f"replaced by {unk!r}: {show_examples(replaced)}")
    if dropped:
        n = len(dropped)
        warn(f"--prompt: {_plural(n, 'character')} not in the vocabulary {'was' if n == 1 else 'were'} "
             f"dropped (the tokenizer has no unknown token): {show_examples(dropped)}")
    return ids


def _read_token_file(path, vocab: int, option: str = "--tokens-file"):
    """Token ids of a file of whitespace- or comma-separated integers below `vocab` (a regular file of
    bounded size)."""
    text = read_input_text(path, option, MAX_TOKENS_FILE_BYTES)
    return parse_int_list(text, f"{option} {path}", 0, vocab - 1)


def _read_text_file(path, option: str) -> str:
    """A UTF-8 text file (a regular file of bounded size)."""
    return read_input_text(path, option, MAX_TEXT_BYTES)


def _encode_file(tok, text: str, option: str, path, min_tokens: int = 2) -> list:
    """Token ids of a text file; warns (counts and examples) about characters replaced or dropped;
    fewer than `min_tokens` is one error line."""
    if hasattr(tok, "encode_with_report"):
        ids, replaced, dropped = tok.encode_with_report(text)
    else:
        ids, replaced, dropped = tok.encode(text), [], []
    for what, chars in (("replaced by the unknown token", replaced), ("dropped", dropped)):
        if chars:
            warn(f"{option} {path}: {_plural(len(chars), 'character')} outside the vocabulary "
                 f"{what}: {show_examples(chars)}")
    if len(ids) < min_tokens:
        raise Spike2LoihiError(f"{option} {path}: {len(ids)} token(s) after encoding; at least {min_tokens} are "
                               "needed")
    return ids


def _explicit(ctx, name: str) -> bool:
    return ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def read_model_tokens(model, model_path, text, tokens_file, max_tokens):
    """Token ids of --text (with the model's tokenizer) or --tokens-file, cut to --max-tokens."""
    V = model.config["vocab_size"]
    if text is not None:
        from converters.tokenizer import artifact_tokenizer
        tok = artifact_tokenizer(model)
        if tok is None:
            raise Spike2LoihiError(f"{model_path} has no tokenizer: give token ids with --tokens-file")
        ids = _encode_file(tok, _read_text_file(text, "--text"), "--text", text, min_tokens=0)
        source = f"--text {text}"
    else:
        ids = _read_token_file(tokens_file, V)
        source = f"--tokens-file {tokens_file}"
    if not ids:
        raise Spike2LoihiError(f"{source}: no tokens after encoding; at least one is needed")
    return ids[:max_tokens] if max_tokens else ids
