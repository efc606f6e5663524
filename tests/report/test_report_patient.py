"""Patient report: content, escaping, self-containment, versions, atomic writing."""

from __future__ import annotations

import re
from datetime import date
from html.parser import HTMLParser

import pandas as pd
import pytest
import report_scenarios
from markupsafe import escape

import pipeline
from pipeline.assessment import FAILURE_MEANING
from pipeline.errors import InputError
from pipeline.report.render import render_patient_report, write_html


def _render(scenario, settings, kb_sources, **kw):
    return render_patient_report(
        scenario.patient_id, scenario.observations, scenario.samples, scenario.therapies,
        scenario.assessment, scenario.alert_history, settings, kb_sources, **kw,
    )


class _Collector(HTMLParser):
    """Tags, attributes, text of sections and the draw-table rows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.tier_text: str | None = None
        self._in_tier = False
        self.rows: dict[str, list[str]] = {}
        self._row: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v) for k, v in attrs)
        attr = dict(attrs)
        if attr.get("id") == "current-tier":
            self._in_tier = True
        if tag == "tr" and "data-sample" in attr:
            self._row = attr["data-sample"]
            self.rows[self._row] = []

    def handle_endtag(self, tag):
        if tag == "span":
            self._in_tier = False
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._in_tier:
            self.tier_text = data.strip()
        if self._row is not None:
            self.rows[self._row].append(data)


def _parse(html: str) -> _Collector:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    return parser


def test_patient_page_names_patient_tier_in_words_and_every_draw(progression, settings,
                                                                 kb_sources):
    html = _render(progression, settings, kb_sources)
    page = _parse(html)
    assert page.tier_text == "FAILURE"
    assert 'class="tier tier-big tier-failure"' in html
    assert "PT-0001" in html
    assert list(page.rows) == ["S1", "S2", "S3", "S4", "S5", "S6"]
    rows = {k: re.sub(r"\s+", " ", "".join(v)) for k, v in page.rows.items()}
    s1 = rows["S1"]
    assert "2025-01-28" in s1 and "3100" in s1 and "0.50%" in s1
    assert "ALK EML4-ALK fusion: VAF 2.10%" in s1 and "64/3050 reads" in s1
    assert "baseline" in s1
    assert "CHIP gene: excluded from the ctDNA level" in s1
    # the draw without any call: every tracked marker below that draw's LoD (0.80%)
    s4 = rows["S4"]
    assert "nothing detected above LoD" in s4
    for marker in ("ALK EML4-ALK fusion", "ALK G1202R", "TP53 R273H"):
        assert f"{marker}: below LoD (<0.80%)" in s4
    assert "(depth)" in s4  # where the LoD came from
    # a sub-threshold call is below LoD, never its raw VAF or zero
    s2 = rows["S2"]
    assert "TP53 R273H: below LoD (<0.50%)" in s2
    assert "0.20%" not in s2 and "VAF 0%" not in html
    s6 = rows["S6"]
    assert "TP53 R273H: below LoD (<0.50%)" in s6 and "filtered: weak_evidence" in s6
    assert "used by a confirmed alert" in s6


@pytest.mark.parametrize(
    ("status", "words", "css"),
    [("OPTIMAL", "OPTIMAL", "tier-optimal"), ("WARNING", "WARNING", "tier-warning"),
     ("FAILURE", "FAILURE", "tier-failure"),
     ("NOT_EVALUABLE", "NOT EVALUABLE", "tier-not-evaluable")],
)
def test_tier_is_printed_in_words_with_its_colour(progression, settings, kb_sources, status,
                                                  words, css):
    scenario = progression
    scenario.assessment = scenario.assessment.model_copy(update={"status": status})
    html = _render(scenario, settings, kb_sources)
    assert _parse(html).tier_text == words
    assert f'class="tier tier-big {css}"' in html
    assert re.search(r"\." + css + r"\b[^{]*\{[^}]*color:", html)  # the class has a colour


def test_not_yet_evaluated_patient(progression, settings, kb_sources):
    progression.assessment = None
    html = _render(progression, settings, kb_sources)
    assert _parse(html).tier_text == "NOT YET EVALUATED"
    assert "has not been evaluated yet" in html
    assert "No current alerts." in html


def test_alerts_show_rule_tier_findings_evidence_and_unverified_label(progression, settings,
                                                                      kb_sources):
    html = _render(progression, settings, kb_sources)
    text = re.sub(r"\s+", " ", "".join(_parse(html).text))
    assert "R1" in text and "New ALK kinase-domain resistance mutation (confirmed)" in text
    assert "P2" in text and "Confirmed loss of molecular response" in text
    # #13 item 3: the rule's evidence label from the registry, not free text
    assert "Evidence strength: evidenced (TKI-treated NSCLC data)" in text
    assert "Evidence strength: analogy (CML ELN / IO ctDNA data; heuristic default)" in text
    assert "ELN: resistance mutations = failure (PMC7214240)" in text
    assert "lorlatinib" in text and "Shaw et al., JCO 2019" in text
    assert "UNVERIFIED: not checked against its primary source" in text
    assert text.count("UNVERIFIED") >= 3  # option badge, alert badge, alert sentence
    # the verified option is labelled verified, the trial one unverified
    options = re.findall(r"<tr><td>([^<]+)</td><td>(approved|trial)</td>.*?</tr>", html, re.S)
    assert [name for name, _ in options] == ["lorlatinib", "NVL-655 (neladalkib)"]
    assert "TP53 R273H" in text and "below LoD (<0.50%)" in text  # finding non-detect
    assert "Draws used:" in text and "S5, S6" in text


def test_therapy_timeline_and_alert_history(cleared, progression, settings, kb_sources):
    html = _render(cleared, settings, kb_sources)
    timeline = html[html.index('id="therapy-timeline"'):]
    timeline = timeline[:timeline.index("</table>")]
    assert "alectinib" in timeline and "2023-01-09" in timeline and "2025-04-30" in timeline
    days = (date(2025, 4, 30) - date(2023, 1, 9)).days
    assert f'<td class="num">{days}</td>' in timeline  # closed line: start to end
    assert "lorlatinib" in timeline and "ongoing" in timeline and ">42 (to 2025-06-16)" in timeline
    html = _render(progression, settings, kb_sources)
    history = html[html.index('id="alert-history"'):]
    assert history.index("2025-09-01 06:00 UTC") < history.index("2025-04-10 06:00 UTC")
    assert "Loss of molecular response after clearance" in history


def test_versions_sources_and_failure_statement(progression, settings, kb_sources):
    html = _render(progression, settings, kb_sources)
    versions = html[html.index('id="versions"'):]
    assert settings.version_label() in versions
    assert "2026.11.0+test" in versions  # the assessment's config
    assert "kb-2026.10" in versions
    assert f"ctdna {pipeline.__version__}" in versions
    for source in kb_sources:
        assert source["name"] in versions and source["licence"] in versions
    assert str(escape(FAILURE_MEANING)) in html
    assert html.count(str(escape(FAILURE_MEANING))) >= 2  # header box and footer
    assert "Do not compare levels across patients" in html


def test_untrusted_strings_are_escaped(settings):
    evil = "<script>alert(1)</script>"
    scenario = report_scenarios.progression(patient_id=evil, gene_override=evil)
    scenario.therapies.loc[:, "drug"] = "<img src=x onerror=alert(2)>"
    history = [{"evaluated_at": "2025-09-01T06:00:00+00:00", "rule_id": "<b>R9</b>",
                "tier": "WARNING", "title": evil}]
    html = render_patient_report(
        evil, scenario.observations, scenario.samples, scenario.therapies, scenario.assessment,
        history, settings,
        [{"name": evil, "version": "1", "licence": "x", "url": "javascript:alert(3)"}],
    )
    lowered = html.lower()
    assert "<script" not in lowered
    assert "<img" not in lowered
    assert "<b>r9" not in lowered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert 'href="javascript' not in lowered


def test_page_is_self_contained(progression, settings, kb_sources):
    html = _render(progression, settings, kb_sources)
    page = _parse(html)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(page.tags)
    assert "svg" in page.tags
    for tag, name, value in page.attrs:
        if name in {"href", "src", "xlink:href", "action", "srcset", "poster"}:
            assert value is not None and value.startswith("#"), (tag, name, value)
    assert "@import" not in html
    assert not re.search(r"url\((?!#)", html)
    # 'http' only as text: the SVG namespace names and the printed knowledge-source addresses
    remaining = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    remaining = remaining.replace('xmlns:xlink="http://www.w3.org/1999/xlink"', "")
    for source in kb_sources:
        remaining = remaining.replace(f'<td class="small mono">{source["url"]}</td>', "")
    assert "http" not in remaining
    assert "@page { size: A4" in html


# pandas warns about concatenating all-NA columns (copy_number of SNV-only patients); the
# store frames legitimately have them, and the dtype outcome does not matter here
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_rows_of_other_patients_are_ignored(progression, cleared, settings, kb_sources):
    obs = pd.concat([progression.observations, cleared.observations], ignore_index=True)
    samples = pd.concat([progression.samples, cleared.samples], ignore_index=True)
    therapies = pd.concat([progression.therapies, cleared.therapies], ignore_index=True)
    html = render_patient_report(
        progression.patient_id, obs, samples, therapies, progression.assessment,
        progression.alert_history, settings, kb_sources,
    )
    assert list(_parse(html).rows) == ["S1", "S2", "S3", "S4", "S5", "S6"]
    assert "lorlatinib</td><td>2025-05-05" not in html


def test_report_is_reproducible_and_timestamp_only_when_asked(progression, settings,
                                                              kb_sources):
    assert _render(progression, settings, kb_sources) == _render(progression, settings,
                                                                 kb_sources)
    stamped = _render(progression, settings, kb_sources,
                      generated_at=pd.Timestamp("2025-10-02 07:30").to_pydatetime())
    assert "report generated 2025-10-02 07:30" in stamped


def test_bad_inputs_raise_input_errors(progression, cleared, settings, kb_sources):
    with pytest.raises(InputError, match="another patient"):
        render_patient_report(
            "PT-0001", progression.observations, progression.samples, progression.therapies,
            cleared.assessment, [], settings, kb_sources,
        )
    with pytest.raises(InputError) as err:
        render_patient_report(
            "PT-0001", progression.observations, progression.samples, progression.therapies,
            progression.assessment, [{"rule_id": "R1", "tier": "WARNING", "title": "x"}],
            settings, kb_sources,
        )
    assert err.value.field == "evaluated_at" and err.value.record == "record 1"


def test_write_html_is_atomic(tmp_path):
    target = tmp_path / "reports" / "patient.html"
    write_html(target, "<!DOCTYPE html><p>first</p>")
    assert target.read_text(encoding="utf-8") == "<!DOCTYPE html><p>first</p>"
    write_html(target, "<!DOCTYPE html><p>second ✓</p>")
    assert target.read_text(encoding="utf-8") == "<!DOCTYPE html><p>second ✓</p>"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    with pytest.raises(TypeError):
        write_html(target, b"not text")  # type: ignore[arg-type]
    # the failed write left the previous report intact and no temporary file behind
    assert target.read_text(encoding="utf-8") == "<!DOCTYPE html><p>second ✓</p>"
    assert [p.name for p in target.parent.iterdir()] == ["patient.html"]
