from index.embedding.embedder import Embedder
from index.ingest.chunking import Chunker, split_sentences

TEXT = (
    "The council met on Monday. It condemned the launch in strong terms. "
    "Diplomats said sanctions were possible. China urged restraint from all sides.\n\n"
    "A second paragraph starts here. It has two sentences."
)


def test_sentences_have_exact_spans() -> None:
    spans = split_sentences(TEXT)
    assert [TEXT[s.start:s.end] for s in spans][:2] == ["The council met on Monday.",
                                                         "It condemned the launch in strong terms."]
    assert all(not TEXT[s.start].isspace() and not TEXT[s.end - 1].isspace() for s in spans)


def test_passages_respect_the_budget_overlap_and_cover_the_text(embedder: Embedder) -> None:
    chunker = Chunker(embedder.count_tokens, max_tokens=24, overlap_tokens=10, model_window=256, title_prefix=True)
    title = "Council meets"
    passages = chunker.chunk(title, TEXT)
    assert len(passages) >= 3
    budget = 24 - (embedder.count_tokens([title])[0] + 1)
    for passage in passages:
        assert passage.text == TEXT[passage.start:passage.end]
        assert embedder.count_tokens([passage.text])[0] <= budget + 2
    # every sentence is in some passage, and consecutive passages overlap or touch
    for span in split_sentences(TEXT):
        assert any(p.start <= span.start and span.end <= p.end for p in passages)
    assert any(b.start < a.end for a, b in zip(passages, passages[1:])), "expected some overlap"
    assert all(b.start > a.start for a, b in zip(passages, passages[1:])), "passages must move forward"


def test_a_sentence_longer_than_the_window_is_cut_not_truncated(embedder: Embedder) -> None:
    long_sentence = " ".join(f"word{i}" for i in range(400)) + "."
    chunker = Chunker(embedder.count_tokens, max_tokens=512, overlap_tokens=0, model_window=embedder.max_seq_length)
    passages = chunker.chunk("", long_sentence)
    assert len(passages) > 1
    assert all(embedder.count_tokens([p.text])[0] <= embedder.max_seq_length - 2 for p in passages)
    assert passages[0].start == 0 and passages[-1].end == len(long_sentence)


def test_empty_text_gives_no_passages(embedder: Embedder) -> None:
    chunker = Chunker(embedder.count_tokens, 128, 32, 256)
    assert chunker.chunk("Title", "   \n ") == []
