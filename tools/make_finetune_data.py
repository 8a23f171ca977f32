"""Build chapter 9's two example files ONCE from the book's corpus (gpt2lib/corpus/python_docs.txt).

    python tools/make_finetune_data.py          # writes gpt2lib/corpus/python_{instructions,topics}.jsonl

- python_instructions.jsonl: {"instruction", "response", "split"}. For every entry of the docs that
  defines a method ("str.capitalize()", "object.__repr__(self)", ...) the question "What does `NAME()`
  do?" and, as the answer, the first sentence of its description; for every section that opens with
  a paragraph of prose, "What is the section `TITLE` about?" and that paragraph's first sentence.
- python_topics.jsonl: {"text", "label", "split"}: paragraphs of prose, labelled with the family of the
  topic they come from (statements, expressions, data model, types).
Every fifth example (by position) is "test", the rest "train". The output is deterministic: run it again
and the bytes are the same; the SHA-256 of both files is written into notebooks/09_finetuning.ipynb.
"""
import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "gpt2lib" / "corpus" / "python_docs.txt"

FAMILIES = {  # topic title (exact) -> family; topics not listed are left out of the labelled set
    "statements": ['The "assert" statement', "Assignment statements", "Augmented assignment statements",
                   'The "break" statement', "Class definitions", "Compound statements",
                   'The "continue" statement', 'The "del" statement', 'The "if" statement', 'The "for" statement',
                   "Function definitions", 'The "global" statement', 'The "import" statement',
                   'The "nonlocal" statement', 'The "pass" statement', 'The "raise" statement',
                   'The "return" statement', 'The "try" statement', 'The "while" statement',
                   'The "with" statement', 'The "yield" statement'],
    "expressions": ["Attribute references", "Await expression", "Binary arithmetic operations",
                    "Binary bitwise operations", "Boolean operations", "Calls", "Comparisons",
                    "Dictionary displays", "Expression lists", "Lambdas", "List displays",
                    "Membership test operations", "Operator precedence", "The power operator",
                    "Shifting operations", "Slicings", "Subscriptions", "Arithmetic conversions",
                    "Unary arithmetic and bitwise operations"],
    "data model": ["Customizing attribute access", "Emulating callable objects", "Basic customization",
                   "With Statement Context Managers", "Emulating numeric types", "Emulating container types",
                   "Special method names", "Coroutines"],
    "types": ["Code Objects", "The Ellipsis Object", "The Null Object", "Type Objects", "String Methods",
              "Truth Value Testing", "The standard type hierarchy", "Functions", 'Mapping Types — "dict"',
              "Methods", "Modules", 'Sequence Types — "list", "tuple", "range"', "Mutable Sequence Types",
              "Objects, values and types", "Special Attributes"],
}


def topics(text: str, underline: str = r"\*") -> list[tuple[str, str]]:
    """(title, body) for each topic (a title line underlined with '*'), or each section ('[*=]')."""
    lines = text.split("\n")
    starts = [i - 1 for i in range(1, len(lines)) if re.fullmatch(underline + "{5,}", lines[i])]
    return [(lines[s], "\n".join(lines[s + 2:e]).strip("\n"))
            for s, e in zip(starts, starts[1:] + [len(lines) + 1])]


def first_sentence(par: str, limit: int = 200) -> str | None:
    par = " ".join(par.split())
    m = re.match(r"(.+?[.!?])(\s|$)", par)
    s = m.group(1) if m else par
    return s if 20 <= len(s) <= limit and "::=" not in s else None


def prose_paragraphs(body: str) -> list[str]:
    """Blocks of unindented prose (no grammar, code, lists or headings), joined into one line."""
    out = []
    for block in re.split(r"\n\s*\n", body):
        lines = block.split("\n")
        if not lines[0] or lines[0][0] in " *=-" or any(re.fullmatch(r"[=\-*]{3,}", l) for l in lines):
            continue
        par = " ".join(" ".join(lines).split())
        if 60 <= len(par) <= 600 and "::=" not in par:
            out.append(par)
    return out


def instructions(text: str) -> list[dict]:
    ex = []
    for title, body in topics(text, "[*=]"):
        pars = prose_paragraphs(body.split("\n\n")[0])       # the section's first paragraph, if prose
        if pars and (s := first_sentence(pars[0])):
            ex.append({"instruction": f"What is the section `{title}` about?", "response": s})
    for title, body in topics(text):
        for m in re.finditer(r"^([A-Za-z_]\w*\.\w+)\(.*\)\n\n((?:   .*\n)+)", body, re.M):
            s = first_sentence(m.group(2))
            if s:
                ex.append({"instruction": f"What does `{m.group(1)}()` do?", "response": s})
    seen, unique = set(), []
    for e in ex:                       # one answer per question (a few methods are described twice)
        if e["instruction"] not in seen:
            seen.add(e["instruction"])
            unique.append(e)
    return unique


def labelled(text: str) -> list[dict]:
    family = {t: f for f, ts in FAMILIES.items() for t in ts}
    return [{"text": p, "label": family[title]} for title, body in topics(text) if title in family
            for p in prose_paragraphs(body)]


def write(path: Path, examples: list[dict]) -> None:
    rows = [{**e, "split": "test" if i % 5 == 4 else "train"} for i, e in enumerate(examples)]
    path.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))
    print(f"{path.relative_to(ROOT)}: {len(rows)} examples, {path.stat().st_size:,} bytes, "
          f"sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    text = CORPUS.read_text(encoding="utf-8")
    write(CORPUS.parent / "python_instructions.jsonl", instructions(text))
    write(CORPUS.parent / "python_topics.jsonl", labelled(text))
