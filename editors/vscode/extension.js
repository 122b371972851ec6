// archspec for VS Code: the grammar (syntaxes/archspec.tmLanguage.json) highlights .arch files
// on its own; this file starts the language server, `archspec lsp` over stdio, as a client.
// If the server cannot start (archspec not installed, or a version without `lsp`), a warning
// says so once and highlighting goes on working.
"use strict";

const vscode = require("vscode");

/** @type {import("vscode-languageclient/node").LanguageClient | undefined} */
let client;

/** The client library, or undefined (with a warning) when `npm install` has not been run. */
function languageClientModule() {
  try {
    return require("vscode-languageclient/node");
  } catch {
    vscode.window.showWarningMessage(
      "archspec: vscode-languageclient is missing (run `npm install` in the extension's " +
        "folder); highlighting works without it, the language server does not start.",
    );
    return undefined;
  }
}

/** @returns {Promise<void>} */
async function startClient() {
  const config = vscode.workspace.getConfiguration("archspec");
  if (!config.get("server.enabled", true)) {
    return;
  }
  const lsp = languageClientModule();
  if (!lsp) {
    return;
  }
  const { LanguageClient, TransportKind } = lsp;
  const command = config.get("server.path", "archspec") || "archspec";
  /** @type {import("vscode-languageclient/node").ServerOptions} */
  const serverOptions = {
    run: { command, args: ["lsp"], transport: TransportKind.stdio },
    debug: { command, args: ["lsp"], transport: TransportKind.stdio },
  };
  /** @type {import("vscode-languageclient/node").LanguageClientOptions} */
  const clientOptions = {
    documentSelector: [
      { scheme: "file", language: "archspec" },
      { scheme: "untitled", language: "archspec" },
    ],
    synchronize: {
      fileEvents: vscode.workspace.createFileSystemWatcher("**/*.arch"),
    },
    connectionOptions: { maxRestartCount: 2 },
  };
  client = new LanguageClient("archspec", "archspec language server", serverOptions, clientOptions);
  try {
    await client.start();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    client = undefined;
    vscode.window.showWarningMessage(
      `archspec: could not start the language server (\`${command} lsp\`): ${message}. ` +
        "Highlighting works without it; set archspec.server.path, or archspec.server.enabled " +
        "to false.",
    );
  }
}

/** @returns {Promise<void>} */
async function stopClient() {
  if (client) {
    const running = client;
    client = undefined;
    await running.stop();
  }
}

/** @param {vscode.ExtensionContext} context */
async function activate(context) {
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration("archspec.server")) {
        await stopClient();
        await startClient();
      }
    }),
    { dispose: () => void stopClient() },
  );
  await startClient();
}

/** @returns {Promise<void>} */
function deactivate() {
  return stopClient();
}

module.exports = { activate, deactivate };
