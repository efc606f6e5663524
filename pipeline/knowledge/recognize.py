"""Vectorised recognition of calls against the knowledge base (alk-knowledge.md 1.7, 3.2-4.2).

Order of evidence for one call: fusion / structural geometry, copy number, coordinates
(codon + translated amino acid; left-normalised indels; MET exon 14 splice regions), then the
annotation (``protein_change`` column, VEP CSQ ``HGVSp``, SnpEff ANN ``HGVS.p``), then gene-level
rules (loss of function, CHIP). Large frames are handled with merges and numpy masks; Python
loops only run over the few rows that touch a reference window or a partner span.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import numpy as np
import pandas as pd

from pipeline.errors import InputError
from pipeline.knowledge.data import BUILDS, KnowledgeData, canonical_compound, norm_chrom
from pipeline.knowledge.sequence import (
    IUPAC_CODON_TABLE,
    complement,
    normalise_protein_series,
    shift_protein_position,
    split_short,
)
from pipeline.schema import none_for_missing

CNV_KINDS = ("plasma_cn", "absolute_cn", "fold_change", "log2_ratio")
_TRUNCATING_RE = re.compile(
    r"stop_gained|frameshift|splice_acceptor|splice_donor|start_lost|"
    r"[A-Z]\d+\*|[A-Z]\d+[A-Z]*fs|Ter\b|\d+Ter|fs\*", re.IGNORECASE
)
#: MET transcripts whose residue numbers are 18 higher than NM_000245 (alk-knowledge.md 3.2).
_MET_LONG_ISOFORM = ("ENST00000318493", "NM_001127500", "ENSP00000317272", "NP_001120972")
_CATEGORY_PRIORITY = {"driver": 0, "alk_resistance": 1, "bypass": 2, "transformation": 3,
                      "chip": 4, "other": 5}


def _obj(series: pd.Series) -> pd.Series:
    return series.astype("object").mask(series.isna(), None)


def _by_unique(series: pd.Series, fn: Callable[[pd.Series], Any]) -> pd.Series:
    """``fn`` (a whole-Series string operation) on the distinct values only, broadcast back.

    Issue #11: pandas' ``.str`` methods run Python per element; a 200,000-record VCF
    repeats its chrom/ref/alt/type/annotation values, so this costs per distinct value.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=False)
    mapped = np.asarray(fn(pd.Series(np.asarray(uniques, dtype=object), dtype="object")))
    return pd.Series(mapped[codes], index=series.index)


def _upper_str(series: pd.Series) -> pd.Series:
    missing = series.isna()
    if missing.all():  # (an unused column, such as a plain VCF's annotation: no work)
        return pd.Series(np.full(len(series), "", dtype=object), index=series.index)
    text = series.astype("object").where(~missing, "")
    return _by_unique(text, lambda u: u.astype(str).str.upper().str.strip())


def _base_at(i: int) -> Callable[[pd.Series], pd.Series]:
    """The i-th character of each string of a Series (for :func:`_by_unique`)."""
    return lambda u: u.str[i]


class _Alleles(NamedTuple):
    """REF/ALT upper-cased, their lengths and whether they are plain ACGT, computed once per
    :meth:`Recognizer.annotate` and shared by the coordinate recognisers (each had
    recomputed them: 0.1 s per 200,000 calls, issue #11 item 1)."""

    ref: pd.Series
    alt: pd.Series
    ref_len: np.ndarray
    alt_len: np.ndarray
    ref_acgt: np.ndarray
    alt_acgt: np.ndarray

    @classmethod
    def of(cls, ref: pd.Series, alt: pd.Series) -> _Alleles:
        ref_len, ref_acgt = _len_and_acgt(ref)
        alt_len, alt_acgt = _len_and_acgt(alt)
        return cls(ref, alt, ref_len, alt_len, ref_acgt, alt_acgt)


def _len_and_acgt(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Length of each string and whether it is plain ``[ACGT]+``, from one
    factorization (per distinct value: alleles repeat, issue #11)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=False)
    distinct = pd.Series(np.asarray(uniques, dtype=object), dtype="object")
    lengths = np.asarray(distinct.str.len())
    acgt = np.asarray(distinct.str.fullmatch(r"[ACGT]+"))
    return lengths[codes], acgt[codes].astype(bool)


class _Upper:
    """``_upper_str`` of a calls column, computed at most once per annotate call."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame
        self._done: dict[str, pd.Series] = {}

    def __call__(self, column: str) -> pd.Series:
        if column not in self._done:
            self._done[column] = _upper_str(self._frame[column])
        return self._done[column]


def _no_chr(series: pd.Series) -> pd.Series:
    text = series.astype("object").where(series.notna(), "")
    return _by_unique(text, lambda u: u.astype(str).str.replace(r"^chr", "", regex=True,
                                                                case=False))


class Recognizer:
    """Applies one :class:`KnowledgeData` to calls frames."""

    def __init__(self, data: KnowledgeData) -> None:
        self.data = data
        m = data.manifest
        self.genes: dict[str, dict[str, Any]] = m["genes"]
        self.chip = {g.upper() for g in m.get("chip_genes", [])}
        self.entry_category = data.entries["category"].to_dict()
        self.entry_verified = (data.entries["evidence_label"] != "recalled-unverified").to_dict()
        self.kb_gene_pattern = re.compile(
            r"(?:^|[|,&;])(" + "|".join(sorted(set(self.genes) | self.chip, key=len,
                                                   reverse=True)) + r")(?=[|,&;]|$)"
        )

    # ------------------------------------------------------------------------------------
    def annotate(self, calls: pd.DataFrame, genome_build: str,
                 cnv_kind: str = "plasma_cn") -> pd.DataFrame:
        if genome_build not in BUILDS:
            raise InputError(f"unknown genome build {genome_build!r} (expected GRCh37 or GRCh38)",
                             field="genome_build")
        if cnv_kind not in CNV_KINDS:
            raise InputError(f"unknown cnv_kind {cnv_kind!r} (expected one of {CNV_KINDS})",
                             field="cnv_kind")
        out = calls.copy()
        n = len(out)
        out.index = pd.RangeIndex(n)
        for col in ("chrom", "pos", "ref", "alt", "variant_type", "gene", "protein_change",
                    "copy_number", "fusion_partner", "mate_chrom", "mate_pos", "annotation"):
            if col not in out.columns:
                out[col] = np.full(n, None, dtype=object)
        upper = _Upper(out)
        gene_in = upper("gene").replace("", None)
        res = pd.DataFrame({
            "gene": gene_in.astype("object"),
            "alteration": np.full(n, None, dtype=object),
            "category": np.full(n, None, dtype=object),
            "kb_id": np.full(n, None, dtype=object),
            "variant_type": _obj(out["variant_type"]),
            "fusion_partner": _obj(out["fusion_partner"]),
        })
        done = np.zeros(n, dtype=bool)
        chrom_norm = _no_chr(out["chrom"])
        pos = pd.to_numeric(out["pos"], errors="coerce").to_numpy(dtype="float64")
        vtype = _by_unique(upper("variant_type"), lambda u: u.str.lower())
        alleles = _Alleles.of(upper("ref"), upper("alt"))

        done |= self._fusions(out, res, done, chrom_norm, pos, vtype, genome_build, upper)
        done |= self._cnvs(out, res, done, vtype, cnv_kind, upper)
        done |= self._codons(res, done, chrom_norm, pos, alleles, genome_build)
        done |= self._indels(res, done, chrom_norm, pos, alleles, genome_build)
        done |= self._met_exon14(res, done, chrom_norm, pos, alleles, genome_build)
        self._annotation(out, res, done, upper)
        self._gene_rules(res, vtype, upper)

        for col in ("gene", "alteration", "category", "kb_id", "variant_type", "fusion_partner"):
            out[col] = none_for_missing(res[col])
        verified = self.entry_verified
        out["kb_verified"] = _by_unique(out["kb_id"], lambda u: u.map(
            lambda k: bool(verified.get(k, False)) if k is not None else False)
        ).to_numpy(dtype=bool)
        return out

    # ------------------------------------------------------------------------------------
    def _fusions(self, out: pd.DataFrame, res: pd.DataFrame, done: np.ndarray,
                 chrom_norm: pd.Series, pos: np.ndarray, vtype: pd.Series,
                 build: str, upper: _Upper) -> np.ndarray:
        fus = self.data.manifest["fusion"]
        hit = np.zeros(len(out), dtype=bool)
        # (a) fusion table rows: gene + fusion_partner
        is_fusion = (vtype == "fusion").to_numpy()
        if is_fusion.any():
            gene = upper("gene")
            partner = upper("fusion_partner")
            for i in np.flatnonzero(is_fusion).tolist():  # fusion rows are few per sample
                # _upper_str gives str cells; str() states it for the type checker
                gene_i, partner_i = str(gene.iat[i]), str(partner.iat[i])
                names = [p for p in re.split(r"-{1,2}|::|/|\s+", partner_i) if p]
                pair = [g for g in dict.fromkeys([*names, gene_i]) if g and g != "NONE"]
                if "ALK" in pair:
                    others = [g for g in pair if g != "ALK" and g not in ("FUSION",)]
                    name = others[0] if others else None
                    res.at[i, "gene"] = "ALK"
                    res.at[i, "fusion_partner"] = name
                    res.at[i, "alteration"] = (f"{name}-ALK fusion" if name
                                               else "ALK fusion (partner unknown)")
                    res.at[i, "category"] = "driver"
                    res.at[i, "kb_id"] = "ALK:fusion"
                    hit[i] = True
                elif pair:
                    main = gene_i or pair[-1]
                    other = next((g for g in pair if g != main), None)
                    cat = fus.get("other_fusion_categories", {}).get(main) or next(
                        (fus.get("other_fusion_categories", {}).get(g) for g in pair
                         if g in fus.get("other_fusion_categories", {})), None)
                    res.at[i, "gene"] = main
                    res.at[i, "alteration"] = (f"{other}-{main} fusion" if other
                                               else f"{main} fusion")
                    if cat:
                        key = next(g for g in pair if g in fus["other_fusion_categories"])
                        res.at[i, "gene"] = key
                        res.at[i, "category"] = cat
                        res.at[i, "kb_id"] = f"{key}:fusion" if f"{key}:fusion" in \
                            self.entry_category else None
                    else:
                        res.at[i, "category"] = "other"
                    hit[i] = True
        # (b) breakend geometry: one end in the ALK window, the mate outside the ALK gene
        sv = vtype.isin(["sv", "fusion"]).to_numpy() & ~hit
        if not sv.any():
            return hit
        win = fus["alk_window"][build]
        gene_span = fus["alk_gene"][build]
        mate_chrom = _no_chr(out["mate_chrom"])
        mate_pos = pd.to_numeric(out["mate_pos"], errors="coerce").to_numpy(dtype="float64")

        def inside(c: pd.Series, p: np.ndarray, span: dict[str, Any]) -> np.ndarray:
            return ((c == str(span["chrom"])).to_numpy() & (p >= span["start"])
                    & (p <= span["end"]))

        self_in = inside(chrom_norm, pos, win) & sv
        mate_in = inside(mate_chrom, mate_pos, win) & sv
        self_gene = inside(chrom_norm, pos, gene_span)
        mate_gene = inside(mate_chrom, mate_pos, gene_span)
        has_mate = ~np.isnan(mate_pos)
        alk_fusion = has_mate & ((self_in & ~mate_gene) | (mate_in & ~self_gene))
        if not alk_fusion.any():
            return hit
        other_chrom = np.where(self_in, mate_chrom.to_numpy(), chrom_norm.to_numpy())
        other_pos = np.where(self_in, mate_pos, pos)
        mate_partner = np.full(len(out), None, dtype=object)
        for name, spans in fus["partners"].items():
            c, start, end = spans[build]
            m = (other_chrom == str(c)) & (other_pos >= start) & (other_pos <= end) & alk_fusion
            mate_partner[m & (mate_partner == None)] = name  # noqa: E711 (numpy elementwise)
        idx = np.flatnonzero(alk_fusion)
        res.loc[idx, "gene"] = "ALK"
        res.loc[idx, "variant_type"] = "fusion"
        res.loc[idx, "category"] = "driver"
        res.loc[idx, "kb_id"] = "ALK:fusion"
        fused = mate_partner[idx]
        res.loc[idx, "alteration"] = [f"{p}-ALK fusion" if p else "ALK fusion (partner unknown)"
                                      for p in fused]
        res.loc[idx, "fusion_partner"] = list(fused)
        return hit | alk_fusion

    def _cnvs(self, out: pd.DataFrame, res: pd.DataFrame, done: np.ndarray,
              vtype: pd.Series, cnv_kind: str, upper: _Upper) -> np.ndarray:
        is_cnv = (vtype == "cnv").to_numpy() & ~done
        if not is_cnv.any():
            return np.zeros(len(out), dtype=bool)
        cnv = self.data.manifest["cnv"]
        floor = float(cnv["amplification_floor"][cnv_kind]["value"])
        cn = pd.to_numeric(out["copy_number"], errors="coerce").to_numpy(dtype="float64")
        gene = res["gene"].astype("object").where(res["gene"].notna(), "").astype(str)
        amp_genes = [g for g, r in self.genes.items() if r.get("amplification")]
        lof_genes = [g for g, r in self.genes.items() if r.get("loss_of_function")]
        loss_words = {str(w).upper() for w in cnv.get("loss_alterations", [])}
        marker = upper("alt") + "|" + upper("protein_change")
        is_loss_marker = marker.map(lambda s: any(w in s.split("|") for w in loss_words)).to_numpy()
        amp = is_cnv & gene.isin(amp_genes).to_numpy() & (cn >= floor - 1e-9) & ~is_loss_marker
        idx = np.flatnonzero(amp)
        if idx.size:
            res.loc[idx, "alteration"] = "amplification"
            res.loc[idx, "category"] = "bypass"
            res.loc[idx, "kb_id"] = [f"{g}:amplification" for g in gene.to_numpy()[idx]]
        loss = is_cnv & gene.isin(lof_genes).to_numpy() & is_loss_marker
        idx = np.flatnonzero(loss)
        if idx.size:
            res.loc[idx, "alteration"] = "deletion"
            res.loc[idx, "kb_id"] = [f"{g}:loss_of_function" for g in gene.to_numpy()[idx]]
            res.loc[idx, "category"] = [self.entry_category[f"{g}:loss_of_function"]
                                        for g in gene.to_numpy()[idx]]
        rest = is_cnv & ~amp & ~loss
        idx = np.flatnonzero(rest)
        if idx.size:
            # a gain below the assay-aware floor, or a CNV in a gene without a CNV class
            res.loc[idx, "category"] = "other"
        return is_cnv

    def _codons(self, res: pd.DataFrame, done: np.ndarray, chrom_norm: pd.Series,
                pos: np.ndarray, alleles: _Alleles, build: str) -> np.ndarray:
        n = len(res)
        ref, alt, lens, alens = alleles.ref, alleles.alt, alleles.ref_len, alleles.alt_len
        sub = (~done & ~np.isnan(pos) & (lens == alens) & (lens >= 1) & alleles.ref_acgt
               & alleles.alt_acgt & (ref != alt).to_numpy())
        if not sub.any():
            return np.zeros(n, dtype=bool)
        rows = np.flatnonzero(sub)
        targets = self.data.codon_positions[build]
        target_pos = targets["pos"].to_numpy(dtype="int64")
        pieces = []
        max_len = int(lens[rows].max())
        for i in range(max_len):  # loop over MNV offsets (a handful), vectorised over rows
            r = rows[lens[rows] > i]
            # Only bases at a codon position can join below (issue #11 item 1: a
            # 200,000-record VCF has a handful): the same inner join, on fewer rows.
            base_pos = pos[r].astype("int64") + i
            at_codon = np.isin(base_pos, target_pos)
            r, base_pos = r[at_codon], base_pos[at_codon]
            if not len(r):
                continue
            # (the i-th base of each distinct allele: SNV alleles repeat, issue #11)
            rbi = _by_unique(ref.iloc[r], _base_at(i)).to_numpy(dtype=str)
            abi = _by_unique(alt.iloc[r], _base_at(i)).to_numpy(dtype=str)
            keep = rbi != abi
            pieces.append(pd.DataFrame({
                "row": r[keep], "chrom_norm": chrom_norm.to_numpy()[r][keep],
                "pos": base_pos[keep], "refb": rbi[keep], "altb": abi[keep],
            }))
        if not pieces:
            return np.zeros(n, dtype=bool)
        bases = pd.concat(pieces, ignore_index=True)
        hits = bases.merge(targets, on=["chrom_norm", "pos"])
        if hits.empty:
            return np.zeros(n, dtype=bool)
        codons = self.data.codons
        strand = codons["strand"].to_numpy()[hits["codon_row"].to_numpy()]
        minus = strand == "-"
        hits["altc"] = np.where(minus, hits["altb"].map(complement), hits["altb"])
        hits["refc"] = np.where(minus, hits["refb"].map(complement), hits["refb"])
        ref_codon = codons["ref_codon"].to_numpy()[hits["codon_row"].to_numpy()]
        expected = np.array([c[k] for c, k in zip(ref_codon, hits["base_idx"].to_numpy(),
                                                   strict=True)])
        from pipeline.knowledge.sequence import IUPAC

        ok = np.array([r in IUPAC[e] for r, e in zip(hits["refc"], expected, strict=True)])
        bad_rows = set(hits.loc[~ok, "row"].tolist())  # REF disagrees with the reference codon
        hits = hits[ok & ~hits["row"].isin(bad_rows).to_numpy()]
        if hits.empty:
            return np.zeros(n, dtype=bool)
        wide = hits.pivot_table(index=["row", "codon_row"], columns="base_idx", values="altc",
                                aggfunc="first")
        wide = wide.reindex(columns=[0, 1, 2]).reset_index()
        crow = wide["codon_row"].to_numpy()
        refc = codons["ref_codon"].to_numpy()[crow]
        mutated = ["".join(b if isinstance(b, str) else rc[k] for k, b in enumerate(trip))
                   for trip, rc in zip(wide[[0, 1, 2]].itertuples(index=False, name=None), refc,
                                       strict=True)]
        alt_aa = pd.Series(mutated).map(IUPAC_CODON_TABLE).to_numpy()
        ref_aa = codons["ref_aa"].to_numpy()[crow]
        aa_pos = codons["aa_pos"].to_numpy()[crow]
        gene = codons["gene"].to_numpy()[crow]
        anychg = codons["any_change_category"].to_numpy()[crow]
        short = np.array([f"{r}{p}{'=' if a == r else a}" for r, p, a in
                          zip(ref_aa, aa_pos, alt_aa, strict=True)], dtype=object)
        per = pd.DataFrame({"row": wide["row"].to_numpy(), "gene": gene, "aa_pos": aa_pos,
                            "short": short, "ambiguous": alt_aa == "X",
                            "synonymous": alt_aa == ref_aa, "anychg": anychg})
        per = per[~per["ambiguous"]]  # IUPAC ambiguity: leave the call to its annotation
        if per.empty:
            return np.zeros(n, dtype=bool)
        per = per.sort_values(["row", "aa_pos"])
        nonsyn = per[~per["synonymous"]]
        agg = nonsyn.groupby("row").agg(gene=("gene", "first"), parts=("short", list),
                                        anychg=("anychg", "first"))
        syn_only = per[~per["row"].isin(agg.index)].groupby("row").agg(
            gene=("gene", "first"), short=("short", "first"))
        hit = np.zeros(n, dtype=bool)
        for row, g, parts, anychg_val in agg.itertuples(name=None):  # recognised rows only
            name = canonical_compound(parts) if len(parts) > 1 else parts[0]
            kb_id = self.data.alias_index.get(f"{g}:{name.upper()}")
            if kb_id is None and len(parts) > 1:
                found = [self.data.alias_index.get(f"{g}:{p.upper()}") for p in parts]
                found = [k for k in found if k]
                kb_id = min(found, key=lambda k: _CATEGORY_PRIORITY[self.entry_category[k]],
                            default=None)
            if kb_id is None and len(parts) == 1 and anychg_val:
                ref_aa_, pos_, _ = split_short(parts[0]) or ("", 0, "")
                kb_id = self.data.alias_index.get(f"{g}:{ref_aa_}{pos_}X")
            res.at[row, "gene"] = g
            res.at[row, "alteration"] = name
            res.at[row, "kb_id"] = kb_id
            res.at[row, "category"] = self.entry_category[kb_id] if kb_id else None
            hit[row] = True
        for row, g, short_ in syn_only.itertuples(name=None):
            res.at[row, "gene"] = g
            res.at[row, "alteration"] = short_
            res.at[row, "category"] = "other"
            hit[row] = True
        return hit

    def _indels(self, res: pd.DataFrame, done: np.ndarray, chrom_norm: pd.Series,
                pos: np.ndarray, alleles: _Alleles, build: str) -> np.ndarray:
        n = len(res)
        hit = np.zeros(n, dtype=bool)
        m = self.data.manifest
        ref, alt = alleles.ref, alleles.alt
        is_indel = (~done & ~np.isnan(pos) & (alleles.ref_len != alleles.alt_len)
                    & alleles.ref_acgt & alleles.alt_acgt)
        if not is_indel.any():
            return hit
        targets = {(norm_chrom(v[build][0]), int(v[build][1]), v[build][2], v[build][3]): v["kb_id"]
                   for v in m.get("indels", [])}
        for window in m.get("ref_windows", []):
            if window["build"] != build:
                continue
            seq = str(window["sequence"]).upper()
            start = int(window["start"])
            end = start + len(seq) - 1
            cand = is_indel & (chrom_norm == norm_chrom(window["chrom"])).to_numpy() \
                & (pos >= start) & (pos <= end)
            for i in np.flatnonzero(cand).tolist():  # only calls inside a hotspot window
                # is_indel holds only [ACGT]+ strings, so str() is exact
                key = _left_normalise(norm_chrom(window["chrom"]), int(pos[i]),
                                      str(ref.iat[i]), str(alt.iat[i]), seq, start)
                if key is not None and key in targets:
                    kb_id = targets[key]
                    res.at[i, "gene"] = self.data.entries.at[kb_id, "gene"]
                    res.at[i, "alteration"] = self.data.entries.at[kb_id, "alteration"]
                    res.at[i, "kb_id"] = kb_id
                    res.at[i, "category"] = self.entry_category[kb_id]
                    hit[i] = True
        return hit

    def _met_exon14(self, res: pd.DataFrame, done: np.ndarray, chrom_norm: pd.Series,
                    pos: np.ndarray, alleles: _Alleles, build: str) -> np.ndarray:
        spec = self.data.manifest["met_exon14"][build]
        lens, alens = alleles.ref_len, alleles.alt_len
        on = (~done & ~np.isnan(pos) & (chrom_norm == str(spec["chrom"])).to_numpy()
              & (pos >= spec["window"][0] - 60) & (pos <= spec["window"][1]))
        if not on.any():
            return np.zeros(len(res), dtype=bool)
        start = pos
        end = pos + np.maximum(lens, 1) - 1
        sites = [*spec["acceptor"], *spec["donor"]]
        touches_site = np.zeros(len(res), dtype=bool)
        for s in sites:
            touches_site |= (start <= s) & (end >= s)
        substitution = (lens == alens)
        # deletions: bases after the VCF anchor; skipping when they reach into the acceptor
        # region (window start .. first exon base) or the donor region (last exon base .. end)
        del_start = pos + 1
        deletion = lens > alens
        acc = (del_start <= spec["exon_start"]) & (end >= spec["window"][0])
        don = (del_start <= spec["window"][1]) & (end >= spec["exon_end"])
        skip = on & ((substitution & touches_site) | (deletion & (acc | don)))
        idx = np.flatnonzero(skip)
        if idx.size:
            res.loc[idx, "gene"] = "MET"
            res.loc[idx, "alteration"] = "exon 14 skipping"
            res.loc[idx, "kb_id"] = "MET:exon14_skipping"
            res.loc[idx, "category"] = "bypass"
        return skip

    def _annotation(self, out: pd.DataFrame, res: pd.DataFrame, done: np.ndarray,
                    upper: _Upper) -> None:
        todo = res["alteration"].isna().to_numpy() & ~done
        todo &= res["category"].isna().to_numpy()
        # only rows that carry a protein change or an annotation have anything to read here
        has_text = (upper("protein_change") != "").to_numpy() | (
            upper("annotation") != "").to_numpy()
        todo &= has_text
        if not todo.any():
            return
        idx = np.flatnonzero(todo)
        sub = out.iloc[idx]
        pc = sub["protein_change"]
        ann = sub["annotation"].astype("object").mask(sub["annotation"].isna(), None)
        # choose the annotation entry: prefer one naming a knowledge-base gene with a p. change
        chosen = ann.map(lambda a: self._pick_entry(a) if a else (None, None))
        ann_gene = chosen.map(lambda t: t[0])
        ann_prot = chosen.map(lambda t: t[1])
        met_aliases = {a.upper() for a in self.data.manifest["met_exon14"]["protein_aliases"]}
        raw = pc.where(pc.notna() & (pc.astype(str).str.strip() != ""), ann_prot)
        norm = normalise_protein_series(raw)
        gene = res["gene"].iloc[idx].where(res["gene"].iloc[idx].notna(), ann_gene.str.upper())
        gene = gene.astype("object").mask(gene.isna(), None)
        for j, i in enumerate(idx.tolist()):  # rows left after coordinates: annotated/table calls
            g = cast("str | None", gene.iat[j])  # gene names or None (masked above)
            # normalise_protein_series: a short name (str) or None when not HGVS-shaped
            short = cast("str | None", norm["short"].iat[j])
            tx = cast("str | None", norm["transcript"].iat[j]) or ""
            raw_j = raw.iat[j]
            if g is not None:
                res.at[i, "gene"] = g
            if g == "MET" and raw_j is not None and str(raw_j).strip().upper() in met_aliases:
                self._assign(res, i, "MET:exon14_skipping")
                continue
            if short is None:
                # literature names that are not HGVS-shaped (``1151Tins``): alias lookup only
                if g is not None and raw_j is not None:
                    bare = re.sub(r"^(?:.*:)?p\.", "", str(raw_j).strip()).upper()
                    kb_id = self.data.alias_index.get(f"{g}:{bare}")
                    if kb_id is not None:
                        self._assign(res, i, kb_id)
                continue
            if g == "MET" and (any(t in tx for t in _MET_LONG_ISOFORM)
                               or (any(t in str(ann.iat[j] or "") for t in _MET_LONG_ISOFORM)
                               and tx == "")):
                short = shift_protein_position(short, -18)  # normalise to NM_000245
            res.at[i, "alteration"] = short
            if g is None:
                continue
            kb_id = self.data.alias_index.get(f"{g}:{short.upper()}")
            if kb_id is None and "+" in short:
                name = canonical_compound(short.split("+"))
                kb_id = self.data.alias_index.get(f"{g}:{name}".upper())
            if kb_id is None:
                parts = split_short(short)
                if parts:
                    kb_id = self.data.alias_index.get(f"{g}:{parts[0]}{parts[1]}X".upper())
                    if kb_id is not None and parts[2] in ("=", parts[0]):
                        kb_id = None  # a synonymous change is not a hotspot change
            if kb_id is not None:
                self._assign(res, i, kb_id, keep_alteration=True)

    def _pick_entry(self, annotation: str) -> tuple[str | None, str | None]:
        best: tuple[int, str | None, str | None] = (9, None, None)
        for entry in str(annotation).split(","):
            prot = re.search(r"((?:ENSP|NP_|ENST|NM_)[0-9A-Za-z_.]*:)?p\.[A-Za-z0-9_*=()?]+", entry)
            gene_m = self.kb_gene_pattern.search(entry)
            gene = gene_m.group(1) if gene_m else None
            rank = (0 if gene else 1) + (0 if prot else 2)
            if rank < best[0]:
                best = (rank, gene, prot.group(0) if prot else None)
        return best[1], best[2]

    def _assign(self, res: pd.DataFrame, i: int, kb_id: str, keep_alteration: bool = False) -> None:
        entries = self.data.entries  # indexed by the unique kb_id
        res.at[i, "gene"] = entries.at[kb_id, "gene"]
        if not keep_alteration or res.at[i, "alteration"] is None:
            res.at[i, "alteration"] = entries.at[kb_id, "alteration"]
        elif kb_id.split(":", 1)[1] != str(res.at[i, "alteration"]) and \
                not kb_id.endswith("X") and kb_id in entries.index:
            res.at[i, "alteration"] = entries.at[kb_id, "alteration"]  # canonical name for aliases
        res.at[i, "kb_id"] = kb_id
        res.at[i, "category"] = self.entry_category[kb_id]

    def _gene_rules(self, res: pd.DataFrame, vtype: pd.Series, upper: _Upper) -> None:
        gene = _by_unique(res["gene"].astype("object").where(res["gene"].notna(), ""),
                          lambda u: u.astype(str).str.upper())
        open_ = res["kb_id"].isna().to_numpy()
        chip = open_ & gene.isin(self.chip).to_numpy()
        idx = np.flatnonzero(chip)
        if idx.size:
            res.loc[idx, "category"] = "chip"
            res.loc[idx, "kb_id"] = [f"{g}:CHIP" for g in gene.to_numpy()[idx]]
        lof_genes = [g for g, r in self.genes.items() if r.get("loss_of_function")]
        # The truncation text is read only on the rows the other conditions leave (issue
        # #11: building it for every call cost 50 ms per 200,000 calls).
        candidate = np.flatnonzero(open_ & ~chip & gene.isin(lof_genes).to_numpy()
                                   & (vtype != "cnv").to_numpy())
        alteration = res["alteration"].iloc[candidate]
        text = (upper("annotation").iloc[candidate] + "|"
                + upper("protein_change").iloc[candidate] + "|"
                + alteration.astype("object").where(alteration.notna(), "").astype(str))
        truncating = _by_unique(text, lambda u: u.str.contains(_TRUNCATING_RE)).to_numpy(
            dtype=bool)
        idx = candidate[truncating]
        if idx.size:
            genes = gene.to_numpy()[idx]
            res.loc[idx, "kb_id"] = [f"{g}:loss_of_function" for g in genes]
            res.loc[idx, "category"] = [self.entry_category[f"{g}:loss_of_function"] for g in genes]
            alt_now = res["alteration"].to_numpy()[idx]
            res.loc[idx, "alteration"] = [a if a is not None else "loss of function"
                                          for a in alt_now]
        rest = res["category"].isna().to_numpy()
        res.loc[rest, "category"] = "other"


def _left_normalise(chrom: str, pos: int, ref: str, alt: str, seq: str,
                    start: int) -> tuple[str, int, str, str] | None:
    """Left-normalise one indel inside a plus-strand reference window.

    Trims shared suffix/prefix (keeping one anchor base), then shifts left while the last
    inserted/deleted base equals the base before the event (VCF normalisation as in
    ``bcftools norm``). Returns ``(chrom, pos, ref, alt)`` or None when the window is too short.
    """
    def base(p: int) -> str | None:
        k = p - start
        return seq[k] if 0 <= k < len(seq) else None

    # the call's REF must agree with the window where they overlap (wrong build otherwise)
    for k, b in enumerate(ref):
        w = base(pos + k)
        if w is not None and w != b:
            return None
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    if len(ref) > 1 and len(alt) > 1:
        return None  # a complex delins is not one of the indel hotspots
    if len(ref) == len(alt):
        return None
    anchor, body = (ref[0], ref[1:]) if len(ref) > len(alt) else (alt[0], alt[1:])
    if anchor != ref[0]:
        return None
    deletion = len(ref) > len(alt)
    while True:
        before = base(pos - 1)
        if before is None or anchor != body[-1]:
            break
        body = anchor + body[:-1]
        pos -= 1
        anchor = before
    return (chrom, pos, anchor + body, anchor) if deletion else (chrom, pos, anchor, anchor + body)
