"""The real model: prompts, unit vectors, Matryoshka truncation, one shared load."""

from __future__ import annotations

import numpy as np

from search.model.engine import sentence_token_masks
from search.service import load_embedder
from search.ranking.evidence import stored_evidence
from search.text.sentences import sentence_spans
from search.settings import Settings


def test_queries_and_passages_use_the_models_own_prompts(embedder):
    assert embedder.info.query_prompt.startswith("task: search result")
    assert embedder.info.document_prompt.startswith("title: none")
    query = embedder.encode_query("黄金价格")
    passages = embedder.encode_documents(["Gold prices rose.", "Pearls are white."])
    assert query.shape == (embedder.info.dimension,) and passages.shape == (2, embedder.info.dimension)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1, atol=1e-4)
    assert float(passages[0] @ query) > float(passages[1] @ query)  # across languages


def test_the_full_size_reuses_the_loaded_model(embedder):
    assert load_embedder(Settings(), dimension=embedder.info.dimension) is embedder


def test_passages_come_with_pooled_sentence_vectors_from_the_same_call(embedder):
    """Sentence vectors pooled from the passage's own token embeddings: the passage vector is
    unchanged, each sentence gets a unit vector, and a question lands on its sentence in
    either language."""
    passage = ("Shuibei is a jewellery district in Shenzhen. Its production lead times are approximately "
               "30% faster than the global average. 深圳的黄金价格在2024年上涨。")
    vectors, sentences = embedder.encode_passages([passage, "短句。"])
    np.testing.assert_allclose(vectors, embedder.encode_documents([passage, "短句。"]), atol=1e-5)
    found = sentences[0]
    assert [passage[a:b][:9] for a, b in found.spans] == ["Shuibei i", "Its produ", "深圳的黄金价格在2"]
    assert found.vectors.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(found.vectors.astype(np.float32), axis=1), 1.0, atol=1e-2)
    for question in ("How much faster are Shuibei's lead times?", "水贝珠宝的生产周期比全球平均快多少？"):
        start, end = stored_evidence(found, embedder.encode_query(question), 0)[0]
        assert "30% faster" in passage[start:end], question
    assert len(sentences[1].spans) == 1


def test_sentence_tokens_are_aligned_to_the_text_after_the_prompt(embedder):
    """Each sentence pools its own tokens: its first word too (the tokenizer folds the space before
    a word into it), never the prompt's or special tokens, no token twice; sentences past the
    truncated tokens are left out, and a tokenisation that does not match the model's gives none."""
    text = "Shuibei is a district. Its lead times are 30% faster.  深圳的黄金价格上涨。"
    prompt, tokenizer = embedder.info.document_prompt, embedder.engine.tokenizer  # the model thread's own

    def tokens(max_length: int = 512):
        encoded = tokenizer(prompt + text, return_offsets_mapping=True, truncation=True, max_length=max_length)
        return [(prompt + text)[a:b] for a, b in encoded["offset_mapping"]]

    def masks(max_length: int = 512, count: int | None = None):
        return sentence_token_masks(tokenizer, prompt, text, max_length, count or len(tokens(max_length)))

    pieces, found = embedder.run(tokens), embedder.run(masks)
    assert [span for span, _ in found] == sentence_spans(text)
    words = ["".join(piece for piece, inside in zip(pieces, mask) if inside) for _, mask in found]
    assert words == [" Shuibei is a district.", " Its lead times are 30% faster.", "深圳的黄金价格上涨。"]
    assert np.array([mask for _, mask in found]).sum(axis=0).max() == 1
    short = embedder.run(lambda: masks(max_length=12))
    assert [span for span, _ in short] == [sentence_spans(text)[0]]  # the rest was truncated away
    assert embedder.run(lambda: masks(count=len(pieces) + 1)) == []


def test_a_passages_title_fills_the_prompts_title_slot(embedder, onnx_embedder, torch_embedder):
    """A titled passage is the model's document prompt with the title in its slot, the same input
    on both runtimes; no title (or an empty one) is ``title: none``; sentence spans still align."""
    passage = "Its production lead times are approximately 30% faster. 深圳的黄金价格在2024年上涨。"
    title = "Shuibei jewellery report › Lead times"
    assert embedder.document_prompts([title, ""]) == [f"title: {title} | text: ", embedder.info.document_prompt]
    plain, plain_sentences = embedder.encode_passages([passage])
    titled, titled_sentences = embedder.encode_passages([passage], titles=[title])
    untitled, _ = embedder.encode_passages([passage], titles=[""])
    np.testing.assert_allclose(untitled, plain, atol=1e-6)
    assert 0.8 < float(plain[0] @ titled[0]) < 0.9999  # the title is read, the passage still leads
    np.testing.assert_allclose(titled, embedder.encode_documents([passage], titles=[title]), atol=1e-5)
    np.testing.assert_allclose(onnx_embedder.encode_documents([passage], titles=[title]),
                               torch_embedder.encode_documents([passage], titles=[title]), atol=1e-4)
    assert titled_sentences[0].spans.tolist() == plain_sentences[0].spans.tolist()
    question = embedder.encode_query("水贝珠宝的生产周期比全球平均快多少？")
    start, end = stored_evidence(titled_sentences[0], question, 0)[0]
    assert "30% faster" in passage[start:end]


def test_a_long_title_is_cut_to_its_first_tokens(embedder):
    from search.model.engine import TITLE_TOKENS

    long_title = " ".join(f"word{number}" for number in range(200))
    (prompt,) = embedder.document_prompts([long_title])
    kept = prompt.removeprefix("title: ").removesuffix(" | text: ")
    assert long_title.startswith(kept) and 0 < len(embedder.tokenizer(kept, add_special_tokens=False)["input_ids"]) <= TITLE_TOKENS
