// Node-RED for the peers' workload (bench/src/suite.rs): the flow in flows.json and nothing it
// need not keep. The suite sets PORT, TIMIX_BENCH_RECEIVER and the user dir (-u, a temp dir).
module.exports = {
    flowFile: require("path").join(__dirname, "flows.json"),
    flowFilePretty: true,
    uiHost: "127.0.0.1",
    uiPort: Number(process.env.PORT || 1880),
    // No editor and no admin API: the flow is given, not edited.
    httpAdminRoot: false,
    disableEditor: true,
    diagnostics: { enabled: false, ui: false },
    runtimeState: { enabled: false, ui: false },
    telemetry: { enabled: false, updateNotification: false },
    editorTheme: { projects: { enabled: false } },
    externalModules: { autoInstall: false },
    functionExternalModules: false,
    // No credentials to keep, so none to encrypt.
    credentialSecret: false,
    // Context in memory only (the default): nothing is written per message.
    logging: { console: { level: "warn", metrics: false, audit: false } },
};
