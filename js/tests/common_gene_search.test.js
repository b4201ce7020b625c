// The one gene search shared by the wizard and the viewer.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createGeneIndex, pickGene, searchGenes } from "../common/gene_search.js";
import * as wizard from "../wizard/gene_search.js";

const GENES = ["CD33", "CD3E", "CD3D", "MS4A1", "ACD3X", "cd3", "LYZ", "HLA-A/B"];
const index = createGeneIndex(GENES);

test("exact, then prefix, then substring; case-insensitive; stable within each group", () => {
  assert.deepEqual(searchGenes(index, "CD3"), ["cd3", "CD33", "CD3E", "CD3D", "ACD3X"]);
  assert.deepEqual(searchGenes(index, "cd3e"), ["CD3E"]);
  assert.deepEqual(searchGenes(index, "  lyz "), ["LYZ"]);
  assert.deepEqual(searchGenes(index, "zzz"), []);
  assert.deepEqual(searchGenes(index, "  "), [], "a blank query matches nothing");
  assert.equal(searchGenes(createGeneIndex(Array.from({ length: 100 }, (_, i) => `G${i}`)), "g", 30).length, 30);
});

test("a case-sensitive exact match comes before a case-insensitive one", () => {
  const idx = createGeneIndex(["Actb", "ACTB", "ACTB2"]);
  assert.deepEqual(searchGenes(idx, "ACTB"), ["ACTB", "Actb", "ACTB2"]);
  assert.deepEqual(searchGenes(idx, "actb"), ["Actb", "ACTB", "ACTB2"]);
});

test("Enter picks the first ranked gene: the export's order decides among prefixes", () => {
  const pbmc = createGeneIndex(["CD3E", "CD33", "CD3D"]);
  assert.equal(pickGene(pbmc, "CD3"), "CD3E");
  assert.equal(pickGene(pbmc, "cd3d"), "CD3D");
  assert.equal(pickGene(index, "hla"), "HLA-A/B");
  assert.equal(pickGene(index, "nothing"), undefined);
  assert.equal(pickGene(index, "  "), undefined);
});

test("the wizard and the viewer use the same search", () => {
  assert.equal(wizard.searchGenes, searchGenes);
  assert.equal(wizard.pickGene, pickGene);
});
