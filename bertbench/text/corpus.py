"""Corpus text -> documents (lists of sentence strings), streamed file by file.

Formats, detected per file from its first non-blank line (gzip detected from its magic bytes):
- WikiExtractor: `<doc id=.. url=.. title=..>` ... `</doc>` blocks; the first line of a block is the
  title (skipped), every other line is a paragraph. Lines outside a block are bad lines.
- WikiText: ` = Title = ` starts a document (the title line is skipped), ` = = Section = = ` headings
  are skipped, every other line is a paragraph; `@-@`, `@.@`, `<unk>` are left as they are.
- plain text: blank lines separate documents; each line is a sentence or a paragraph.

Paragraph lines are split into sentences with `sentencex` (Wikimedia's rule-based segmenter, a
compiled wheel with its rules built in: nothing is downloaded). Counted, never silently dropped:
lines that are not UTF-8 or contain no letter/digit (table residue such as `|}`) are `skipped_lines`;
documents left with no sentence are `skipped_documents`.
"""

import dataclasses
import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from bertbench.errors import BertbenchError
from bertbench.resources import sample_path

_WIKITEXT_TITLE = re.compile(r"=\s+(?!=)(.*?\S)\s+=")  # ` = Title = ` (single level)
_WIKITEXT_SECTION = re.compile(r"=(\s+=)+\s.*\s=(\s+=)+")  # ` = = Section = = ` and deeper
_DOC_OPEN = re.compile(r"<doc(\s[^>]*)?>")
_ALNUM = re.compile(r"\w")
# WikiText's split-number markers contain a period that sentence splitters take for a full stop.
_WIKITEXT_PROTECT = (("@.@", "@\ue000@"), ("@,@", "@\ue001@"))


@dataclasses.dataclass
class CorpusStats:
    """Counts of a pass over a corpus; filled while documents are streamed."""

    files: int = 0
    lines: int = 0
    documents: int = 0  # documents yielded
    sentences: int = 0  # sentences in the yielded documents
    skipped_documents: int = 0  # documents with no sentence left
    skipped_lines: int = 0  # undecodable lines, lines without any letter/digit, stray lines

    def as_dict(self):
        return dataclasses.asdict(self)


class DocumentReader:
    """Iterator of documents (list[str] sentences) over a file or folder; `.stats` fills as it goes."""

    def __init__(self, path, sentence_split=True, max_documents=None):
        self.files = corpus_files(path)
        self.sentence_split = sentence_split
        self.max_documents = max_documents
        self.stats = CorpusStats()
        self._documents = self._generate()

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._documents)

    def _generate(self):
        split = split_sentences if self.sentence_split else (lambda line, wikitext=False: [line])
        for file in self.files:
            self.stats.files += 1
            for paragraphs, wikitext in _file_documents(file, self.stats):
                sentences = [s for p in paragraphs for s in split(p, wikitext=wikitext)]
                if not sentences:
                    self.stats.skipped_documents += 1
                    continue
                self.stats.documents += 1
                self.stats.sentences += len(sentences)
                yield sentences
                if self.max_documents and self.stats.documents >= self.max_documents:
                    return


def read_documents(path, sentence_split=True, max_documents=None):
    """Documents of a corpus file or folder (recursively, in sorted path order), streamed.

    path: a file, a folder, or "sample" (the bundled sample corpus). Returns a `DocumentReader`:
    iterate it for documents (each a list of sentence strings); its `.stats` (CorpusStats) holds the
    counts of what was read so far. sentence_split=False keeps every line as one "sentence".
    """
    return DocumentReader(path, sentence_split=sentence_split, max_documents=max_documents)


def corpus_files(path):
    """The files of a corpus: `path` itself, or every non-hidden file below it in sorted order."""
    if str(path) == "sample":
        path = sample_path("corpus")
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise BertbenchError(f"corpus not found: {path}; pass an existing text file or folder")
    files = sorted((p for p in path.rglob("*") if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)),
                   key=lambda p: p.relative_to(path).as_posix())
    if not files:
        raise BertbenchError(f"corpus folder {path} holds no files; put text, WikiText or "
                             f"WikiExtractor files (optionally .gz) in it")
    return files


def split_sentences(paragraph, wikitext=False):
    """Sentences of one paragraph line; pieces without a letter/digit join the sentence before."""
    try:
        import sentencex
    except ImportError:
        raise BertbenchError("sentence splitting needs the sentencex package: pip install "
                             "'sentencex>=1.0.32,<2' (or read with sentence_split=False)") from None

    if wikitext:
        for marker, placeholder in _WIKITEXT_PROTECT:
            paragraph = paragraph.replace(marker, placeholder)
    sentences = []
    for piece in sentencex.segment("en", paragraph):
        piece = piece.strip()
        if wikitext:
            for marker, placeholder in _WIKITEXT_PROTECT:
                piece = piece.replace(placeholder, marker)
        if not piece:
            continue
        if sentences and not _ALNUM.search(piece):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def _lines(file, stats):
    """Decoded, right-stripped lines of a (possibly gzipped) file; undecodable lines are counted."""
    with open(file, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    try:
        with opener(file, "rb") as handle:
            for raw in handle:
                stats.lines += 1
                try:
                    yield raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    stats.skipped_lines += 1
    except (OSError, EOFError, zlib.error) as err:
        raise BertbenchError(f"{file}: cannot read ({err}); replace the file with a valid text or "
                             f".gz file") from None


def _file_documents(file, stats):
    """(paragraph lines, is_wikitext) per document of one file, in file order."""
    lines = _lines(file, stats)
    head = []
    for line in lines:  # peek at the first non-blank line to detect the format
        head.append(line)
        if line.strip():
            break
    first = head[-1].strip() if head else ""
    lines = _chain(head, lines)
    if _DOC_OPEN.match(first):
        yield from ((doc, False) for doc in _wikiextractor_documents(lines, stats))
    elif _WIKITEXT_TITLE.fullmatch(first) or _WIKITEXT_SECTION.fullmatch(first):
        yield from ((doc, True) for doc in _wikitext_documents(lines, stats))
    else:
        yield from ((doc, False) for doc in _plain_documents(lines, stats))


def _chain(head, rest):
    yield from head
    yield from rest


def _paragraph(line, stats):
    """The stripped line if it holds text; None (counted as skipped) if it has no letter/digit."""
    line = line.strip()
    if _ALNUM.search(line):
        return line
    stats.skipped_lines += 1
    return None


def _plain_documents(lines, stats):
    doc = None  # None between documents; a block of only bad lines yields [] (a skipped document)
    for line in lines:
        if not line.strip():
            if doc is not None:
                yield doc
            doc = None
            continue
        doc = [] if doc is None else doc
        if (text := _paragraph(line, stats)) is not None:
            doc.append(text)
    if doc is not None:
        yield doc


def _wikitext_documents(lines, stats):
    doc = None  # None until the first title; text before it forms a document of its own
    for line in lines:
        stripped = line.strip()
        if not stripped or _WIKITEXT_SECTION.fullmatch(stripped):
            continue
        if _WIKITEXT_TITLE.fullmatch(stripped):
            if doc is not None:
                yield doc
            doc = []
        elif (text := _paragraph(line, stats)) is not None:
            doc = [] if doc is None else doc
            doc.append(text)
    if doc is not None:
        yield doc


def _wikiextractor_documents(lines, stats):
    doc, title_pending = None, False  # doc is None outside a <doc> block
    for line in lines:
        stripped = line.strip()
        if _DOC_OPEN.match(stripped):
            if doc is not None:  # a block left open: close it where the next one starts
                yield doc
            doc, title_pending = [], True
        elif stripped == "</doc>":
            if doc is None:
                stats.skipped_lines += 1
            else:
                yield doc
            doc = None
        elif not stripped:
            continue
        elif doc is None:
            stats.skipped_lines += 1  # text outside any <doc> block
        elif title_pending:
            title_pending = False  # the article title repeated as its first line
        elif (text := _paragraph(line, stats)) is not None:
            doc.append(text)
    if doc is not None:
        yield doc


def split_heldout(documents, fraction, seed):
    """(train_docs, heldout_docs): a seeded document-level split, each part in corpus order.

    round(fraction * n) documents are held out, at least one when fraction > 0 and n >= 2, and at
    least one document always stays for training.
    """
    documents = list(documents)
    if not 0.0 <= fraction < 1.0:
        raise BertbenchError(f"held-out fraction must be in [0, 1), got {fraction}; e.g. 0.01")
    n = len(documents)
    count = int(round(fraction * n))
    if fraction > 0 and n >= 2:
        count = min(max(count, 1), n - 1)
    held = np.zeros(n, dtype=bool)
    held[np.random.default_rng(seed).choice(n, size=count, replace=False)] = True
    train = [d for d, h in zip(documents, held) if not h]
    return train, [d for d, h in zip(documents, held) if h]
