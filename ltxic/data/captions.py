"""Caption hygiene: captions say scene and action, never the subject's physical traits (the reference carries them).

The word rules live in ``caption_rules.tsv`` (kind, pattern, message, suggestion), a table users extend; length,
near-duplicate, naming and reference-conflict checks are parameters here. ``suggest_rewrite`` removes trait phrases
and replaces gendered words by "person"; vague motion is flagged for a human, since only they know what moved.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ltxic.data.dataset import DatasetError, read_dataset_json
from ltxic.io.files import atomic_path, write_json_atomic

PLACEHOLDER_CAPTION = "TODO: caption"  # written by pairing when a clip has no NAME.txt; flagged until replaced


def is_placeholder_caption(text: str) -> bool:
    return not text.strip() or text.strip().upper().startswith("TODO")

RULES_PATH = Path(__file__).with_name("caption_rules.tsv")
RULE_KINDS = ("trait", "gender", "vague_motion")
SEVERITY = {
    "trait": "warning",
    "gender": "warning",
    "vague_motion": "warning",
    "too_short": "warning",
    "too_long": "warning",
    "names_subject": "warning",
    "names_other_identity": "error",
    "reference_conflict": "error",
    "near_duplicate": "info",  # same scene and action across clips is normal; listed, not flagged
}
MIN_WORDS = 5
MAX_WORDS = 80
NEAR_DUPLICATE_RATIO = 0.95


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    message: str
    suggestion: str


@dataclass
class Issue:
    kind: str
    severity: str
    message: str
    suggestion: str = ""
    match: str = ""
    entry: int | None = None

    def __str__(self) -> str:
        where = f"entry {self.entry}: " if self.entry is not None else ""
        what = f" ({self.match!r})" if self.match else ""
        return f"{where}{self.severity} {self.kind}{what}: {self.message}" + (
            f"; {self.suggestion}" if self.suggestion else ""
        )


def load_rules(*paths: str | os.PathLike[str]) -> list[Rule]:
    """The shipped rules plus any extra TSV files (same columns); errors name the file, line and column."""
    rules: list[Rule] = []
    for path in (RULES_PATH, *map(Path, paths)):
        lines = [ln for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header != ["kind", "pattern", "message", "suggestion"]:
            raise ValueError(f"{path}: the first non-comment line must be 'kind<TAB>pattern<TAB>message<TAB>suggestion'")
        for n, row in enumerate(reader, start=2):
            if len(row) != 4:
                raise ValueError(f"{path}: rule {n} has {len(row)} tab-separated columns, expected 4")
            kind, pattern, message, suggestion = row
            if kind not in RULE_KINDS:
                raise ValueError(f"{path}: rule {n}: kind {kind!r} is not one of {', '.join(RULE_KINDS)}")
            try:
                compiled = re.compile(rf"(?<![\w-])(?:{pattern})(?![\w-])", re.IGNORECASE)
            except re.error as err:
                raise ValueError(f"{path}: rule {n}: pattern {pattern!r} is not a valid regex ({err})") from err
            rules.append(Rule(kind, compiled, message, suggestion))
    return rules


_DEFAULT_RULES: list[Rule] | None = None


def _rules(rules: Sequence[Rule] | None) -> Sequence[Rule]:
    global _DEFAULT_RULES
    if rules is not None:
        return rules
    if _DEFAULT_RULES is None:
        _DEFAULT_RULES = load_rules()
    return _DEFAULT_RULES


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text)


def check_caption(
    text: str, rules: Sequence[Rule] | None = None, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
) -> list[Issue]:
    """Issues of one caption on its own: trait, gender and vague-motion words, length."""
    issues = []
    for rule in _rules(rules):
        for m in rule.pattern.finditer(text):
            issues.append(Issue(rule.kind, SEVERITY[rule.kind], rule.message, rule.suggestion, m.group(0)))
    n = len(_words(text))
    if n < min_words:
        issues.append(Issue("too_short", SEVERITY["too_short"], f"{n} words (< {min_words})",
                            "say the scene and one concrete action, e.g. 'A person nods in a dim green room, close-up.'"))
    elif n > max_words:
        issues.append(Issue("too_long", SEVERITY["too_long"], f"{n} words (> {max_words})",
                            "keep scene, action and framing; cut the rest"))
    return issues


def _normalize(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def _identity_names(identities: Mapping[str, Any] | None) -> dict[str, set[str]]:
    """identity key -> names it may be called by (the key, and the first word of its consent subject)."""
    names: dict[str, set[str]] = {}
    for key, info in (identities or {}).items():
        found = {str(key)}
        subject = ((info or {}).get("consent") or {}).get("subject") if isinstance(info, Mapping) else None
        if subject:
            first = re.match(r"[A-Za-z][\w'-]*", str(subject))
            if first:
                found.add(first.group(0))
        names[str(key)] = {n for n in found if len(n) >= 2}
    return names


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE) is not None


@dataclass
class Report:
    """Issues over a dataset's captions; ``flagged`` leaves out ``info`` (listed, not a problem by itself)."""

    captions: list[str]
    issues: list[Issue] = field(default_factory=list)

    @property
    def flagged(self) -> list[Issue]:
        return [i for i in self.issues if i.severity != "info"]

    @property
    def flagged_entries(self) -> list[int]:
        return sorted({i.entry for i in self.flagged if i.entry is not None})

    def for_entry(self, index: int) -> list[Issue]:
        return [i for i in self.issues if i.entry == index]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in self.issues:
            out[i.kind] = out.get(i.kind, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": len(self.captions),
            "flagged_entries": self.flagged_entries,
            "counts": self.counts(),
            "issues": [asdict(i) for i in self.issues],
        }

    def to_markdown(self) -> str:
        lines = ["| entry | severity | kind | match | message | suggestion |", "|---|---|---|---|---|---|"]
        for i in self.issues:
            cells = [str(i.entry), i.severity, i.kind, i.match, i.message, i.suggestion]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append(f"\n{len(self.flagged_entries)} of {len(self.captions)} captions flagged; counts: {self.counts()}")
        return "\n".join(lines)


def check_captions(
    entries: Sequence[Mapping[str, Any] | str],
    identities: Mapping[str, Any] | None = None,
    rules: Sequence[Rule] | None = None,
    min_words: int = MIN_WORDS,
    max_words: int = MAX_WORDS,
    near_duplicate_ratio: float = NEAR_DUPLICATE_RATIO,
) -> Report:
    """Check every entry's caption, plus dataset-level checks.

    ``entries`` are dataset.json entries (``caption``, optional ``identity``, ``video_path``, ``reference_image``)
    or bare strings. Trait or gender words in an entry with reference media are a ``reference_conflict``; naming
    another identity of the dataset is ``names_other_identity``; near-identical captions of different clips are
    grouped as ``near_duplicate`` (info).
    """
    items = [{"caption": e} if isinstance(e, str) else dict(e) for e in entries]
    captions = [str(e.get("caption") or "") for e in items]
    names = _identity_names(identities)
    report = Report(captions)
    for idx, (entry, text) in enumerate(zip(items, captions)):
        found = check_caption(text, rules, min_words, max_words)
        for issue in found:
            issue.entry = idx
        report.issues.extend(found)
        traits = [i.match for i in found if i.kind in ("trait", "gender")]
        if traits and (entry.get("reference_image") or entry.get("reference_audio")):
            report.issues.append(Issue(
                "reference_conflict", SEVERITY["reference_conflict"],
                f"states traits ({', '.join(traits)}) that the reference defines; a caption that describes the "
                "person fights the reference image", "describe scene and action only", entry=idx))
        own = str(entry.get("identity") or "")
        for key, aliases in names.items():
            for name in sorted(aliases):
                if _mentions(text, name):
                    if key == own:
                        report.issues.append(Issue(
                            "names_subject", SEVERITY["names_subject"], f"names the subject ({name})",
                            "write 'the person': the reference carries who it is", name, idx))
                    else:
                        report.issues.append(Issue(
                            "names_other_identity", SEVERITY["names_other_identity"],
                            f"names identity {key!r} but the entry is identity {own!r}",
                            "fix the identity field or the caption", name, idx))
                    break
    for group in _near_duplicate_groups(items, captions, near_duplicate_ratio):
        for idx in group:
            others = [g for g in group if g != idx]
            report.issues.append(Issue(
                "near_duplicate", SEVERITY["near_duplicate"], f"nearly the same caption as entries {others}",
                "fine if the clips show the same scene and action; otherwise say what differs", entry=idx))
    report.issues.sort(key=lambda i: (i.entry if i.entry is not None else -1))
    return report


def _near_duplicate_groups(items: list[dict], captions: list[str], ratio: float) -> list[list[int]]:
    norm = [_normalize(c) for c in captions]
    tokens = [set(n.split()) for n in norm]
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if not norm[i] or not norm[j]:
                continue
            same_clip = items[i].get("video_path") and items[i].get("video_path") == items[j].get("video_path")
            if same_clip:
                continue  # one clip listed twice (e.g. with another voice reference) is not a caption problem
            union = len(tokens[i] | tokens[j]) or 1
            if len(tokens[i] & tokens[j]) / union < ratio - 0.1:  # cheap filter before difflib
                continue
            if norm[i] == norm[j] or difflib.SequenceMatcher(None, norm[i], norm[j]).ratio() >= ratio:
                parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


# ---------------------------------------------------------------- rewrite

_MARK = "\x00"
_STOP_AFTER_HER = {
    "and", "or", "but", "while", "as", "to", "in", "on", "at", "with", "from", "for", "by", "of", "into", "toward",
    "towards", "again", "back", "up", "down", "away", "off", "out", "a", "an", "the", "this", "that", "slowly",
    "quickly", "gently", "once", "twice",
}
_GENDER_NOUNS = r"woman|man|girl|boy|lady|guy|gentleman|businessman|businesswoman"
_GENDER_PLURALS = r"women|men|girls|boys|ladies|guys|gentlemen"


def _replace_her(m: re.Match[str]) -> str:
    space, nxt = m.group(1), m.group(2)
    if nxt and nxt.lower() not in _STOP_AFTER_HER:
        return nxt  # possessive: "turns her head" -> "turns head"
    return "the person" + space + (nxt or "")  # object: "greets her" -> "greets the person"


def suggest_rewrite(text: str, rules: Sequence[Rule] | None = None, names: Iterable[str] = ()) -> str:
    """Drop trait phrases, replace gendered words and names by "person", keep scene and action.

    >>> suggest_rewrite("A woman with red hair slowly turns her head left")
    'A person slowly turns head left'
    """
    out = text
    for name in names:
        if len(name) >= 2:
            out = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", "the person", out, flags=re.IGNORECASE)
    for rule in _rules(rules):
        if rule.kind == "trait":
            out = rule.pattern.sub(_MARK, out)
    # a list of removed traits collapses to one mark, then the words that only served it go too
    out = re.sub(rf"{_MARK}(?:\s*(?:,|and|or)?\s*{_MARK})+", _MARK, out)
    out = re.sub(rf"(?:,\s*)?\b(?:with|who has|that has|has|having)\s+{_MARK}", "", out, flags=re.IGNORECASE)
    out = re.sub(rf"\b(?:his|her|their)\s+{_MARK}", "", out, flags=re.IGNORECASE)
    out = re.sub(rf"\s*,?\s*{_MARK}\s*,?", " ", out)
    # pronouns
    out = re.sub(r"\b(?:she|he)\b", "the person", out, flags=re.IGNORECASE)
    out = re.sub(r"\b(?:herself|himself)\b", "themselves", out, flags=re.IGNORECASE)
    out = re.sub(r"\bhis\b(\s+)(?=[A-Za-z])", "", out, flags=re.IGNORECASE)
    out = re.sub(r"\b(?:his|hers)\b", "the person's", out, flags=re.IGNORECASE)
    out = re.sub(r"\bhim\b", "the person", out, flags=re.IGNORECASE)
    out = re.sub(r"\bher\b(\s*)([A-Za-z]+)?", _replace_her, out, flags=re.IGNORECASE)
    # gendered nouns and adjectives
    out = re.sub(r"\b(?:fe)?male\s+(?=[A-Za-z])", "", out, flags=re.IGNORECASE)
    out = re.sub(rf"\b(?:an?)\s+(?:{_GENDER_NOUNS})\b", "a person", out, flags=re.IGNORECASE)
    out = re.sub(rf"\b(the|this|that)\s+(?:{_GENDER_NOUNS})\b", r"\1 person", out, flags=re.IGNORECASE)
    out = re.sub(rf"\b(?:{_GENDER_PLURALS})\b", "people", out, flags=re.IGNORECASE)
    out = re.sub(rf"\b(?:{_GENDER_NOUNS})\b", "person", out, flags=re.IGNORECASE)
    out = re.sub(r"\ban\s+person\b", "a person", out, flags=re.IGNORECASE)
    # tidy punctuation and spacing left by removals
    out = re.sub(r"\s+", " ", out)
    out = re.sub(r"\s+([,.;:!?])", r"\1", out)
    out = re.sub(r",\s*([,.;:!?])", r"\1", out)
    out = re.sub(r"\b(and|with|or)\s*([.,;:!?]|$)", r"\2", out)
    out = re.sub(r"^[\s,;:]+", "", out).strip()
    if out and text[:1].isupper():
        out = out[0].upper() + out[1:]
    return out


# ---------------------------------------------------------------- dataset files


@dataclass
class CleanReport:
    """Before/after caption issues of :func:`clean_dataset`, with the changed captions."""

    dataset: Path
    out_path: Path
    report_path: Path
    before: Report
    after: Report
    changes: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": str(self.dataset),
            "out_path": str(self.out_path),
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "changes": self.changes,
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Caption hygiene: {self.dataset.name} -> {self.out_path.name}",
            "",
            f"Flagged captions: {len(self.before.flagged_entries)} before, {len(self.after.flagged_entries)} after "
            f"(of {len(self.before.captions)}).",
            "",
            "| entry | before | after | issues before | issues after |",
            "|---|---|---|---|---|",
        ]
        for i, (b, a) in enumerate(zip(self.before.captions, self.after.captions)):
            ib = ", ".join(sorted({x.kind for x in self.before.for_entry(i) if x.severity != "info"}))
            ia = ", ".join(sorted({x.kind for x in self.after.for_entry(i) if x.severity != "info"}))
            if ib or ia or a != b:
                cells = [str(i), b, a if a != b else "(unchanged)", ib or "-", ia or "-"]
                lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        left = [x for x in self.after.flagged]
        if left:
            lines += ["", "Still needs a person (the rewrite does not invent motion or scene):", ""]
            lines += [f"- {x}" for x in left]
        return "\n".join(lines) + "\n"


def _load_dataset(path: Path) -> dict[str, Any]:
    data = read_dataset_json(path)
    if not isinstance(data.get("entries"), list):
        raise DatasetError(f"{path}: expected an object with an 'entries' list (see dataset.json in the course)")
    for i, e in enumerate(data["entries"]):
        if not isinstance(e, dict) or not isinstance(e.get("caption"), str):
            raise DatasetError(f"{path}: entries[{i}].caption is missing or not a string; write the caption as text")
    return data


def check_dataset_captions(dataset_json_path: str | os.PathLike[str], **kwargs: Any) -> Report:
    """:func:`check_captions` on a dataset.json file."""
    data = _load_dataset(Path(dataset_json_path))
    return check_captions(data["entries"], data.get("identities"), **kwargs)


_MEDIA_KEYS = ("video_path", "reference_image", "reference_audio")


def clean_dataset(
    dataset_json_path: str | os.PathLike[str], out_path: str | os.PathLike[str], **kwargs: Any
) -> CleanReport:
    """Rewrite every caption with :func:`suggest_rewrite`, write the cleaned dataset atomically, report before/after.

    Media paths stay valid: they are re-expressed relative to the output file's folder. The markdown report is
    written beside the output as ``<out stem>.captions.md``.
    """
    src, out = Path(dataset_json_path), Path(out_path)
    data = _load_dataset(src)
    identities = data.get("identities")
    before = check_captions(data["entries"], identities, **kwargs)
    names = _identity_names(identities)
    cleaned = json.loads(json.dumps(data))
    changes = []
    for i, entry in enumerate(cleaned["entries"]):
        aliases = names.get(str(entry.get("identity")), set())
        aliases = aliases | {n for v in names.values() for n in v}
        new = suggest_rewrite(entry["caption"], kwargs.get("rules"), names=sorted(aliases, key=len, reverse=True))
        if new != entry["caption"]:
            changes.append({"entry": i, "before": entry["caption"], "after": new})
            entry["caption"] = new
        if src.parent.resolve() != out.parent.resolve():
            for key in _MEDIA_KEYS:
                value = entry.get(key)
                if isinstance(value, str) and value and not Path(value).is_absolute():
                    entry[key] = os.path.relpath(src.parent.resolve() / value, out.parent.resolve())
                    if entry[key].startswith(".."):
                        cleaned["allow_outside_paths"] = True  # the media stay beside the original dataset.json
    after = check_captions(cleaned["entries"], identities, **kwargs)
    write_json_atomic(out, cleaned)
    report = CleanReport(src, out, out.with_name(out.stem + ".captions.md"), before, after, changes)
    with atomic_path(report.report_path) as tmp:
        tmp.write_text(report.to_markdown(), encoding="utf-8")
    return report
