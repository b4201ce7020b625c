import { test } from "node:test";
import assert from "node:assert/strict";
import { geneMatches, pickGene } from "../viewer/gene_search.js";

const GENES = ["CD3E", "CD3D", "MS4A1", "ACD3X", "cd34", "LYZ", "HLA-A/B"];

test("prefix matches come before substring matches, case-insensitively", () => {
  assert.deepEqual(geneMatches(GENES, "cd3"), ["CD3E", "CD3D", "cd34", "ACD3X"]);
  assert.deepEqual(geneMatches(GENES, "zzz"), []);
  assert.deepEqual(geneMatches(GENES, "", 2), ["CD3E", "CD3D"]);
  assert.equal(geneMatches(Array.from({ length: 100 }, (_, i) => `G${i}`), "g", 30).length, 30);
});

test("Enter picks the exact gene, then a case-insensitive one, then the first match", () => {
  assert.equal(pickGene(GENES, "CD3D"), "CD3D");
  assert.equal(pickGene(GENES, " lyz "), "LYZ");
  assert.equal(pickGene(GENES, "hla"), "HLA-A/B");
  assert.equal(pickGene(GENES, "nothing"), undefined);
});
