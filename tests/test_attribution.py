"""The source article is attributed, and the guide says it is independent of Amazon: in its
fine print (the first screen, both languages), the README and docs/source/README.md."""

from __future__ import annotations

from pathlib import Path

from widgets.flow import default_flow

ROOT = Path(__file__).resolve().parents[1]
ARTICLE = ROOT / "docs" / "source" / "contact-amazon.ko.txt"


def test_first_screen_names_the_article_and_says_it_is_independent() -> None:
    flow = default_flow()
    fine_print = flow[flow.start].fine_print
    assert fine_print is not None
    ko, en = fine_print("ko"), fine_print("en")
    for text in (ko, en):
        assert "Charles Brown" in text and "아마존에 문의" in text
        assert "2021" in text and "2024" in text
    assert "아마존과 관계없는" in ko and "승인하지 않았어요" in ko
    assert "independent of Amazon" in en and "endorsed" in en


def test_readme_and_docs_attribute_the_article_and_disclaim_amazon() -> None:
    # what the attribution says is what the article's header states
    header = ARTICLE.read_text().splitlines()[:4]
    assert header == ["아마존에 문의", "", "작가: Charles Brown", "창조 날짜: 9 2 월 2021"]
    assert "업데이트 날짜: 1 칠월 2024" in ARTICLE.read_text()
    readme = (ROOT / "README.md").read_text()
    attribution = (ROOT / "docs" / "source" / "README.md").read_text()
    for text in (readme, attribution):
        assert "Charles Brown" in text and "아마존에 문의" in text
        assert "2021" in text and "2024" in text
        assert "not stated" in text.lower() or "states no licence" in text.lower()
    assert "not affiliated with Amazon" in readme
    assert "Not affiliated with Amazon" in attribution
    assert "docs/source/README.md" in readme
