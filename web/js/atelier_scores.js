// Atelier: Variation Score and Rank Select show their scores and ranking on the node after a run
// (the same text is in the prompt's /history entry).
import { app } from "../../../scripts/app.js";
import { showExecutedText } from "./atelier_text.js";

const NODES = {
  AtelierVariationScore: ["atelier_scores_text", "Atelier variation scores"],
  AtelierRankSelect: ["atelier_ranking_text", "Atelier ranking"],
};

app.registerExtension({
  name: "atelier.scores",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const target = NODES[nodeData.name];
    if (target) showExecutedText(nodeType, ...target);
  },
});
