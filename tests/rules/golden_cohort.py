"""A small multi-patient scenario cohort for the engine's golden test (#11 item 2).

One patient per rule family (response, rise, ALK resistance, MET, MAPK, other bypass,
emerging clone, surveillance, no line), evaluated together so that cohort-wide
computations are exercised across patients.
"""

from __future__ import annotations

from datetime import timedelta

from rules_timeline import START, Timeline, cnv, fusion, snv

AS_OF = START + timedelta(days=400)


def golden_timeline() -> Timeline:
    """The golden cohort: the same timelines whatever the engine's internals."""
    t = Timeline()
    t.therapy("G01", "alectinib", START)  # responder (E1 / OPTIMAL)
    t.draw("G01", -3, fusion(0.04))
    t.draw("G01", 42)
    t.therapy("G02", "alectinib", START)  # clearance then rise (P3)
    t.draw("G02", -3, fusion(0.05))
    t.draw("G02", 42, fusion(0.002))
    t.draw("G02", 120, fusion(0.03))
    t.draw("G02", 150, fusion(0.06))
    t.therapy("G03", "alectinib", START)  # ALK resistance, confirmed (R1/R2)
    t.draw("G03", -3, fusion(0.05))
    t.draw("G03", 60, fusion(0.01))
    t.draw("G03", 200, fusion(0.03), snv("ALK", "G1202R", "alk_resistance", 0.01))
    t.draw("G03", 230, fusion(0.04), snv("ALK", "G1202R", "alk_resistance", 0.02),
           snv("ALK", "L1196M", "alk_resistance", 0.01))
    t.therapy("G04", "lorlatinib", START)  # MET amplification (R3)
    t.draw("G04", -3, fusion(0.03))
    t.draw("G04", 90, fusion(0.01), cnv("MET", 3.5))
    t.therapy("G05", "alectinib", START)  # KRAS G12C (R4)
    t.draw("G05", -3, fusion(0.03))
    t.draw("G05", 90, fusion(0.01), snv("KRAS", "p.G12C", "bypass", 0.01))
    t.draw("G05", 120, fusion(0.01), snv("KRAS", "p.G12C", "bypass", 0.015))
    t.therapy("G06", "alectinib", START)  # other bypass (R5) and an emerging clone (P4)
    t.draw("G06", -3, fusion(0.03))
    t.draw("G06", 90, fusion(0.01), snv("PIK3CA", "E545K", "bypass", 0.01),
           snv("TP53", "R273H", "other", 0.02))
    t.draw("G06", 130, fusion(0.01), snv("TP53", "R273H", "other", 0.04))
    t.therapy("G07", "alectinib", START)  # negative reference, later positive (B1)
    t.draw("G07", -3)
    t.draw("G07", 100, fusion(0.003))
    t.draw("G08", -10, fusion(0.02))  # draws but no line
    t.therapy("G09", "brigatinib", START)  # no draw yet: overdue (C1)
    return t
