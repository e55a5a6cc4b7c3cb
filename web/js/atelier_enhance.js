// Atelier: Prompt Enhance shows its score, iterations, enhanced prompt and any fallback on the node.
import { app } from "../../../scripts/app.js";
import { showExecutedText } from "./atelier_text.js";

app.registerExtension({
  name: "atelier.enhance",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name === "AtelierPromptEnhance") {
      showExecutedText(nodeType, "atelier_enhance_text", "Atelier prompt enhancement");
    }
  },
});
