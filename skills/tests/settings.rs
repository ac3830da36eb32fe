//! The settings of `serve` and `send`, seen from outside through `--print-config`: every setting layers the same
//! way, flag > environment variable > TOML file > codex-manager profile > default, and settings that cannot work
//! together are usage errors that name the setting.
//!
//! Each row of the table sets one setting at each layer it has to a different value; the test turns the layers on
//! from the bottom up and checks that the highest one given wins. Tokens print redacted, so their rows can only
//! check that a value is there at all.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use skillbridge_doubles::tls::TestCa;
use toml::Value;

/// One setting and its value at each layer. Expected values are TOML literals (`3`, `"3s"`, `true`); `None` as
/// the default means the setting is absent.
struct Row {
    command: &'static str,
    key: &'static str,
    /// Arguments every run of this row needs (e.g. `--app-server` for the app-server settings).
    base: Vec<String>,
    flag: Option<(Vec<String>, String)>,
    env: Option<(&'static str, String, String)>,
    file: Option<(String, String)>,
    /// Fields of the profile `local` (JSON), and the value they give.
    profile: Option<(String, String)>,
    default: Option<String>,
}

fn words(args: &[&str]) -> Vec<String> {
    args.iter().map(|word| word.to_string()).collect()
}

fn literal(text: &str) -> String {
    format!("{text:?}")
}

/// A row whose four layers give `"…flag"`, `"…env"`, `"…file"`: most settings are plain text or numbers.
#[allow(clippy::too_many_arguments)]
fn row(
    command: &'static str,
    key: &'static str,
    flag: Option<(&[&str], &str)>,
    env: Option<(&'static str, &str, &str)>,
    file: Option<(&str, &str)>,
    profile: Option<(&str, &str)>,
    default: Option<&str>,
) -> Row {
    Row {
        command,
        key,
        base: Vec::new(),
        flag: flag.map(|(args, expected)| (words(args), expected.to_owned())),
        env: env.map(|(name, value, expected)| (name, value.to_owned(), expected.to_owned())),
        file: file.map(|(toml, expected)| (toml.to_owned(), expected.to_owned())),
        profile: profile.map(|(json, expected)| (json.to_owned(), expected.to_owned())),
        default: default.map(str::to_owned),
    }
}

/// A switch that each layer turns the other way: file `true`, variable `false`, flag on.
fn switch(command: &'static str, key: &'static str, flag: &str, variable: &'static str, table: &str) -> Row {
    let field = key.rsplit('.').next().unwrap();
    row(
        command,
        key,
        Some((&[flag], "true")),
        Some((variable, "false", "false")),
        Some((&format!("[{table}]\n{field} = true"), "true")),
        None,
        Some("false"),
    )
}

fn table(workdir: &Path) -> Vec<Row> {
    let cwd = literal(&workdir.display().to_string());
    let mut rows = vec![
        row(
            "serve",
            "codex_manager.url",
            Some((&["--manager-url", "http://127.0.0.1:11"], r#""http://127.0.0.1:11""#)),
            Some((
                "CODEX_MANAGER_API_BASE",
                "http://127.0.0.1:12",
                r#""http://127.0.0.1:12""#,
            )),
            Some((
                "[codex_manager]\nurl = \"http://127.0.0.1:13\"",
                r#""http://127.0.0.1:13""#,
            )),
            Some((r#""baseUrl": "http://127.0.0.1:14""#, r#""http://127.0.0.1:14""#)),
            Some(r#""http://127.0.0.1:3001""#),
        ),
        row(
            "serve",
            "codex_manager.prefix",
            Some((&["--manager-prefix", "/flag"], r#""/flag""#)),
            Some(("CODEX_MANAGER_API_PREFIX", "/env", r#""/env""#)),
            Some(("[codex_manager]\nprefix = \"/file\"", r#""/file""#)),
            Some((r#""apiPrefix": "/profile""#, r#""/profile""#)),
            Some(r#""/api""#),
        ),
        row(
            "serve",
            "codex_manager.timeout",
            Some((&["--manager-timeout", "1s"], r#""1s""#)),
            Some(("CODEX_MANAGER_TIMEOUT_MS", "2000", r#""2s""#)),
            Some(("[codex_manager]\ntimeout = \"3s\"", r#""3s""#)),
            Some((r#""timeoutMs": 4000"#, r#""4s""#)),
            Some(r#""30s""#),
        ),
        row(
            "serve",
            "codex_manager.rbac_role",
            None,
            Some(("CODEX_MANAGER_RBAC_ROLE", "env-role", r#""env-role""#)),
            Some(("[codex_manager]\nrbac_role = \"file-role\"", r#""file-role""#)),
            Some((r#""auth": {"role": "profile-role"}"#, r#""profile-role""#)),
            None,
        ),
        row(
            "serve",
            "codex_manager.rbac_actor",
            None,
            Some(("CODEX_MANAGER_RBAC_ACTOR", "env-actor", r#""env-actor""#)),
            Some(("[codex_manager]\nrbac_actor = \"file-actor\"", r#""file-actor""#)),
            Some((r#""auth": {"actor": "profile-actor"}"#, r#""profile-actor""#)),
            None,
        ),
        row(
            "serve",
            "codex_manager.bearer_token",
            Some((&["--manager-token", "flag-secret"], r#""<redacted>""#)),
            Some(("CODEX_MANAGER_BEARER_TOKEN", "env-secret", r#""<redacted>""#)),
            Some(("[codex_manager]\nbearer_token = \"file-secret\"", r#""<redacted>""#)),
            Some((r#""auth": {"bearer": "profile-secret"}"#, r#""<redacted>""#)),
            None,
        ),
        row(
            "serve",
            "session.cwd",
            Some((&["--cwd", "/flag"], r#""/flag""#)),
            Some(("SKILLBRIDGE_CWD", "/env", r#""/env""#)),
            Some(("[session]\ncwd = \"/file\"", r#""/file""#)),
            None,
            Some(&cwd),
        ),
        row(
            "serve",
            "session.model",
            Some((&["--model", "flag-model"], r#""flag-model""#)),
            Some(("SKILLBRIDGE_MODEL", "env-model", r#""env-model""#)),
            Some(("[session]\nmodel = \"file-model\"", r#""file-model""#)),
            None,
            None,
        ),
        row(
            "serve",
            "session.approval_policy",
            Some((&["--approval-policy", "never"], r#""never""#)),
            Some(("SKILLBRIDGE_APPROVAL_POLICY", "on-request", r#""on-request""#)),
            Some(("[session]\napproval_policy = \"untrusted\"", r#""untrusted""#)),
            None,
            None,
        ),
        row(
            "serve",
            "session.sandbox",
            Some((&["--sandbox", "read-only"], r#""read-only""#)),
            Some(("SKILLBRIDGE_SANDBOX", "workspace-write", r#""workspace-write""#)),
            Some(("[session]\nsandbox = \"danger-full-access\"", r#""danger-full-access""#)),
            None,
            None,
        ),
        row(
            "serve",
            "session.tools",
            Some((&["--tools", "tickets,clock"], r#"["tickets","clock"]"#)),
            Some(("SKILLBRIDGE_TOOLS", "notes", r#"["notes"]"#)),
            Some(("[session]\ntools = [\"sql\"]", r#"["sql"]"#)),
            None,
            None,
        ),
        row(
            "serve",
            "session.exclude_tools",
            Some((&["--exclude-tools", "note_save"], r#"["note_save"]"#)),
            Some(("SKILLBRIDGE_EXCLUDE_TOOLS", "sql,chart", r#"["sql","chart"]"#)),
            Some(("[session]\nexclude_tools = [\"notes\"]", r#"["notes"]"#)),
            None,
            None,
        ),
        row(
            "serve",
            "session.read_only",
            Some((&["--read-only"], "true")),
            Some(("SKILLBRIDGE_READ_ONLY", "true", "true")),
            Some(("[session]\nread_only = true", "true")),
            None,
            None,
        ),
        row(
            "serve",
            "serve.sessions",
            Some((&["--sessions", "5"], "5")),
            Some(("SKILLBRIDGE_SESSIONS", "4", "4")),
            Some(("[serve]\nsessions = 3", "3")),
            None,
            Some("1"),
        ),
        row(
            "serve",
            "serve.attach",
            Some((&["--session", "flag-session"], r#"["flag-session"]"#)),
            None,
            Some(("[serve]\nattach = [\"file-session\"]", r#"["file-session"]"#)),
            None,
            Some("[]"),
        ),
        row(
            "serve",
            "serve.prompt",
            Some((&["--prompt", "flag prompt"], r#""flag prompt""#)),
            Some(("SKILLBRIDGE_PROMPT", "env prompt", r#""env prompt""#)),
            Some(("[serve]\nprompt = \"file prompt\"", r#""file prompt""#)),
            None,
            None,
        ),
        row(
            "serve",
            "serve.poll_interval",
            Some((&["--poll-interval", "1s"], r#""1s""#)),
            Some(("SKILLBRIDGE_POLL_INTERVAL", "2s", r#""2s""#)),
            Some(("[serve]\npoll_interval = \"3s\"", r#""3s""#)),
            None,
            Some(r#""5s""#),
        ),
        row(
            "serve",
            "serve.concurrency",
            Some((&["--concurrency", "5"], "5")),
            Some(("SKILLBRIDGE_CONCURRENCY", "4", "4")),
            Some(("[serve]\nconcurrency = 3", "3")),
            None,
            Some("64"),
        ),
        row(
            "serve",
            "serve.grace",
            Some((&["--grace", "1s"], r#""1s""#)),
            Some(("SKILLBRIDGE_GRACE", "2s", r#""2s""#)),
            Some(("[serve]\ngrace = \"3s\"", r#""3s""#)),
            None,
            Some(r#""10s""#),
        ),
        switch(
            "serve",
            "serve.all_sessions",
            "--all-sessions",
            "SKILLBRIDGE_ALL_SESSIONS",
            "serve",
        ),
        switch(
            "serve",
            "serve.delete_on_exit",
            "--delete-on-exit",
            "SKILLBRIDGE_DELETE_ON_EXIT",
            "serve",
        ),
        row(
            "serve",
            "admin.addr",
            Some((&["--admin", "127.0.0.1:1"], r#""127.0.0.1:1""#)),
            Some(("SKILLBRIDGE_ADMIN", "127.0.0.1:2", r#""127.0.0.1:2""#)),
            Some(("[admin]\naddr = \"127.0.0.1:3\"", r#""127.0.0.1:3""#)),
            None,
            Some(r#""127.0.0.1:7878""#),
        ),
        row(
            "serve",
            "admin.enabled",
            Some((&["--no-admin"], "false")),
            Some(("SKILLBRIDGE_NO_ADMIN", "0", "true")),
            Some(("[admin]\nenabled = false", "false")),
            None,
            Some("true"),
        ),
        row(
            "serve",
            "admin.token",
            Some((&["--admin-token", "flag-secret"], r#""<redacted>""#)),
            Some(("SKILLBRIDGE_ADMIN_TOKEN", "env-secret", r#""<redacted>""#)),
            Some(("[admin]\ntoken = \"file-secret\"", r#""<redacted>""#)),
            None,
            None,
        ),
        row(
            "serve",
            "app_server.program",
            Some((&["--app-server", "/flag/codex"], r#""/flag/codex""#)),
            Some(("SKILLBRIDGE_APP_SERVER", "/env/codex", r#""/env/codex""#)),
            Some(("[app_server]\nprogram = \"/file/codex\"", r#""/file/codex""#)),
            None,
            None,
        ),
        row(
            "serve",
            "app_server.enabled",
            Some((&["--app-server"], "true")),
            Some(("SKILLBRIDGE_APP_SERVER", "false", "false")),
            Some(("[app_server]\nenabled = true", "true")),
            None,
            None,
        ),
        Row {
            base: words(&["--app-server"]),
            ..row(
                "serve",
                "app_server.codex_home",
                Some((&["--codex-home", "/flag"], r#""/flag""#)),
                Some(("CODEX_HOME", "/env", r#""/env""#)),
                Some(("[app_server]\ncodex_home = \"/file\"", r#""/file""#)),
                None,
                None,
            )
        },
        Row {
            base: words(&["--app-server"]),
            ..row(
                "serve",
                "app_server.log",
                Some((&["--codex-log", "debug"], r#""debug""#)),
                Some(("SKILLBRIDGE_CODEX_LOG", "info", r#""info""#)),
                Some((
                    "[app_server]\nlog = \"warn,codex_core=info\"",
                    r#""warn,codex_core=info""#,
                )),
                None,
                None,
            )
        },
        Row {
            base: words(&["--app-server"]),
            ..switch(
                "serve",
                "app_server.restart",
                "--restart",
                "SKILLBRIDGE_RESTART",
                "app_server",
            )
        },
        row(
            "send",
            "send.timeout",
            Some((&["--timeout", "1s"], r#""1s""#)),
            Some(("SKILLBRIDGE_SEND_TIMEOUT", "2s", r#""2s""#)),
            Some(("[send]\ntimeout = \"3s\"", r#""3s""#)),
            None,
            Some(r#""5m""#),
        ),
        switch(
            "send",
            "send.keep_session",
            "--keep-session",
            "SKILLBRIDGE_KEEP_SESSION",
            "send",
        ),
        Row {
            base: words(&["--app-server"]),
            ..switch(
                "send",
                "send.keep_thread",
                "--keep-thread",
                "SKILLBRIDGE_KEEP_THREAD",
                "send",
            )
        },
        Row {
            base: words(&["--app-server"]),
            ..row(
                "send",
                "app_server.log",
                Some((&["--codex-log", "debug"], r#""debug""#)),
                Some(("SKILLBRIDGE_CODEX_LOG", "info", r#""info""#)),
                Some(("[app_server]\nlog = \"error\"", r#""error""#)),
                None,
                None,
            )
        },
        row(
            "send",
            "send.concurrency",
            Some((&["--concurrency", "5"], "5")),
            Some(("SKILLBRIDGE_CONCURRENCY", "4", "4")),
            Some(("[send]\nconcurrency = 3", "3")),
            None,
            Some("64"),
        ),
        row(
            "send",
            "send.poll_interval",
            Some((&["--poll-interval", "1s"], r#""1s""#)),
            Some(("SKILLBRIDGE_POLL_INTERVAL", "2s", r#""2s""#)),
            Some(("[send]\npoll_interval = \"3s\"", r#""3s""#)),
            None,
            Some(r#""5s""#),
        ),
        row(
            "send",
            "codex_manager.url",
            Some((&["--manager-url", "http://127.0.0.1:11"], r#""http://127.0.0.1:11""#)),
            Some((
                "CODEX_MANAGER_API_BASE",
                "http://127.0.0.1:12",
                r#""http://127.0.0.1:12""#,
            )),
            Some((
                "[codex_manager]\nurl = \"http://127.0.0.1:13\"",
                r#""http://127.0.0.1:13""#,
            )),
            Some((r#""baseUrl": "http://127.0.0.1:14""#, r#""http://127.0.0.1:14""#)),
            Some(r#""http://127.0.0.1:3001""#),
        ),
        row(
            "send",
            "session.model",
            Some((&["--model", "flag-model"], r#""flag-model""#)),
            Some(("SKILLBRIDGE_MODEL", "env-model", r#""env-model""#)),
            Some(("[session]\nmodel = \"file-model\"", r#""file-model""#)),
            None,
            None,
        ),
    ];
    // CA files are read when the settings are resolved, so each layer names a PEM file of its own.
    let ca = |layer: &str| {
        let path = workdir.join(format!("{layer}-ca.pem"));
        std::fs::write(&path, TestCa::new(layer).cert_pem()).unwrap();
        path.display().to_string()
    };
    let (flag_ca, env_ca, file_ca) = (ca("flag"), ca("env"), ca("file"));
    rows.push(row(
        "serve",
        "codex_manager.ca",
        Some((&["--manager-ca", &flag_ca], &literal(&flag_ca))),
        Some(("CODEX_MANAGER_CA", &env_ca, &literal(&env_ca))),
        Some((
            &format!("[codex_manager]\nca = {}", literal(&file_ca)),
            &literal(&file_ca),
        )),
        None,
        None,
    ));
    rows.push(row(
        "serve",
        "cluster.url",
        Some((&["--cluster", "redis://127.0.0.1:1/0"], r#""redis://127.0.0.1:1/0""#)),
        Some((
            "SKILLBRIDGE_CLUSTER",
            "redis://127.0.0.1:2/0",
            r#""redis://127.0.0.1:2/0""#,
        )),
        Some((
            "[cluster]\nurl = \"redis://127.0.0.1:3/0\"",
            r#""redis://127.0.0.1:3/0""#,
        )),
        None,
        None,
    ));
    // The group's other settings matter (and have defaults) only with a store.
    let mut group_rows = vec![
        row(
            "serve",
            "cluster.group",
            Some((&["--cluster-group", "flag"], r#""flag""#)),
            Some(("SKILLBRIDGE_CLUSTER_GROUP", "env", r#""env""#)),
            Some(("[cluster]\ngroup = \"file\"", r#""file""#)),
            None,
            Some(r#""skillbridge""#),
        ),
        row(
            "serve",
            "cluster.name",
            Some((&["--cluster-name", "flag"], r#""flag""#)),
            Some(("SKILLBRIDGE_CLUSTER_NAME", "env", r#""env""#)),
            Some(("[cluster]\nname = \"file\"", r#""file""#)),
            None,
            None,
        ),
        row(
            "serve",
            "cluster.lease",
            Some((&["--cluster-lease", "1s"], r#""1s""#)),
            Some(("SKILLBRIDGE_CLUSTER_LEASE", "2s", r#""2s""#)),
            Some(("[cluster]\nlease = \"3s\"", r#""3s""#)),
            None,
            Some(r#""10s""#),
        ),
    ];
    for row in &mut group_rows {
        row.base = words(&["--cluster", "redis://127.0.0.1:9/0"]);
    }
    rows.extend(group_rows);
    // `[skills.sql]` is read from the file only; the binary checks that each database is a file.
    let database = workdir.join("main.db");
    std::fs::write(&database, b"").unwrap();
    let databases = format!("{{ main = {} }}", literal(&database.display().to_string()));
    for command in ["serve", "send"] {
        rows.push(row(
            command,
            "skills.sql.databases",
            None,
            None,
            Some((&format!("[skills.sql]\ndatabases = {databases}"), &databases)),
            None,
            Some("{}"),
        ));
    }
    for row in &mut rows {
        if row.command == "send" {
            row.base.push("hello".into());
        }
    }
    rows
}

/// A clean environment in a folder of its own: no settings but the ones a test gives.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    /// Runs the skillbridge binary with `args` and only `env` (besides PATH and HOME) in its environment.
    fn run(&self, args: &[String], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_skillbridge"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path())
            .current_dir(self.path());
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().unwrap()
    }

    /// `--print-config` of `args`, parsed.
    fn print(&self, args: &[String], env: &[(&str, &str)]) -> Value {
        let mut args = args.to_vec();
        args.push("--print-config".into());
        let output = self.run(&args, env);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?} {env:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        toml::from_str(&String::from_utf8(output.stdout).unwrap()).unwrap()
    }
}

fn value_at<'a>(config: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(config, |value, part| value.get(part))
}

fn parse_literal(literal: &str) -> Value {
    toml::from_str::<toml::Table>(&format!("v = {literal}")).unwrap()["v"].clone()
}

/// One run of a row: the layers on so far, and what the top one should give.
struct Step {
    layer: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    expected: Option<String>,
}

/// The runs of `row`: defaults only, then each layer it has added on top, from the bottom up.
fn steps(sandbox: &Sandbox, row: &Row) -> Vec<Step> {
    let mut current = Step {
        layer: "default",
        args: [vec![row.command.to_owned()], row.base.clone()].concat(),
        env: Vec::new(),
        expected: row.default.clone(),
    };
    let mut steps = Vec::new();
    let mut push = |current: &mut Step, layer, expected: &String| {
        steps.push(Step {
            layer: std::mem::replace(&mut current.layer, layer),
            args: current.args.clone(),
            env: current.env.clone(),
            expected: current.expected.replace(expected.clone()),
        });
    };
    if let Some((fields, expected)) = &row.profile {
        push(&mut current, "profile", expected);
        let json = format!(r#"{{"currentProfile": "other", "profiles": {{"local": {{{fields}}}}}}}"#);
        let profile = sandbox.write("profiles.json", &json);
        current
            .args
            .extend(words(&["--profile", "local", "--profile-file", &profile]));
    }
    if let Some((toml, expected)) = &row.file {
        push(&mut current, "file", expected);
        current
            .args
            .extend(words(&["--config", &sandbox.write("skillbridge.toml", toml)]));
    }
    if let Some((name, value, expected)) = &row.env {
        push(&mut current, "variable", expected);
        current.env.push((name, value.clone()));
    }
    if let Some((flag, expected)) = &row.flag {
        push(&mut current, "flag", expected);
        current.args.extend(flag.iter().cloned());
    }
    steps.push(current);
    steps
}

#[test]
fn every_setting_layers_flag_over_variable_over_file_over_profile_over_default() {
    let sandbox = Sandbox::new();
    let mut checked = 0;
    for row in table(&sandbox.path()) {
        for step in steps(&sandbox, &row) {
            let env: Vec<(&str, &str)> = step.env.iter().map(|(name, value)| (*name, value.as_str())).collect();
            let printed = sandbox.print(&step.args, &env);
            assert_eq!(
                value_at(&printed, row.key),
                step.expected.as_deref().map(parse_literal).as_ref(),
                "{} {}: with the {} layer on top ({:?}, {env:?})",
                row.command,
                row.key,
                step.layer,
                step.args
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} checks");
}

/// The stderr of a run that must be refused as a usage error.
fn refused(sandbox: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut args = words(args);
    args.push("--print-config".into());
    let output = sandbox.run(&args, env);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    stderr
}

#[test]
fn the_settings_file_is_found_by_flag_or_variable_and_send_falls_back_on_serve() {
    let sandbox = Sandbox::new();
    let file = sandbox.write("b.toml", "[serve]\nconcurrency = 7\npoll_interval = \"7s\"\n");
    let by_variable = sandbox.print(&words(&["serve"]), &[("SKILLBRIDGE_CONFIG", &file)]);
    assert_eq!(value_at(&by_variable, "serve.concurrency"), Some(&Value::Integer(7)));
    let other = sandbox.write("a.toml", "[serve]\nconcurrency = 8\n");
    let by_flag = sandbox.print(&words(&["serve", "--config", &other]), &[("SKILLBRIDGE_CONFIG", &file)]);
    assert_eq!(value_at(&by_flag, "serve.concurrency"), Some(&Value::Integer(8)));
    let send = sandbox.print(&words(&["send", "hi", "--config", &file]), &[]);
    assert_eq!(value_at(&send, "send.concurrency"), Some(&Value::Integer(7)));
    assert_eq!(value_at(&send, "send.poll_interval"), Some(&Value::String("7s".into())));
}

#[test]
fn attaching_creates_no_session_unless_asked_and_nothing_to_serve_is_refused() {
    let sandbox = Sandbox::new();
    let attach = sandbox.print(&words(&["serve", "--session", "s1", "--session", "s2"]), &[]);
    assert_eq!(value_at(&attach, "serve.sessions"), Some(&Value::Integer(0)));
    assert_eq!(
        value_at(&attach, "serve.attach"),
        Some(&parse_literal(r#"["s1", "s2"]"#))
    );
    assert!(refused(&sandbox, &["serve", "--sessions", "0"], &[]).contains("nothing to serve"));
    sandbox.print(&words(&["serve", "--sessions", "0", "--all-sessions"]), &[]);
}

#[test]
fn bad_values_name_the_flag_the_variable_or_the_file_they_came_from() {
    let sandbox = Sandbox::new();
    let variable = refused(&sandbox, &["serve"], &[("SKILLBRIDGE_GRACE", "ten")]);
    assert!(variable.contains("SKILLBRIDGE_GRACE"), "{variable}");
    let typo = sandbox.write("typo.toml", "[serve]\nconcurency = 3\n");
    let file = refused(&sandbox, &["serve", "--config", &typo], &[]);
    assert!(file.contains("concurency") && file.contains(&typo), "{file}");
    let unitless = sandbox.write("unitless.toml", "[serve]\ngrace = \"5\"\n");
    assert!(refused(&sandbox, &["serve", "--config", &unitless], &[]).contains("unit"));
    assert!(refused(&sandbox, &["serve", "--concurrency", "0"], &[]).contains("--concurrency"));
    assert!(refused(&sandbox, &["serve", "--grace", "5"], &[]).contains("unit"));
    assert!(refused(&sandbox, &["serve", "--admin", "localhost"], &[]).contains("--admin"));
    assert!(refused(&sandbox, &["serve", "--admin", "127.0.0.1:1", "--no-admin"], &[]).contains("--no-admin"));
    // A blank variable counts as unset.
    let blank = sandbox.print(&words(&["serve"]), &[("SKILLBRIDGE_GRACE", " ")]);
    assert_eq!(value_at(&blank, "serve.grace"), Some(&Value::String("10s".into())));
}

#[test]
fn a_public_admin_address_needs_a_token_and_tokens_never_show() {
    let sandbox = Sandbox::new();
    let refusal = refused(&sandbox, &["serve", "--admin", "0.0.0.0:7878"], &[]);
    assert!(refusal.contains("non-loopback"), "{refusal}");
    let args = words(&["serve", "--admin", "0.0.0.0:7878", "--manager-token", "cm-s3cret"]);
    let output = sandbox.run(
        &[args, words(&["--print-config"])].concat(),
        &[("SKILLBRIDGE_ADMIN_TOKEN", "admin-s3cret")],
    );
    assert_eq!(output.status.code(), Some(0));
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!shown.contains("s3cret"), "{shown}");
    let help = sandbox.run(
        &words(&["serve", "--help"]),
        &[("SKILLBRIDGE_ADMIN_TOKEN", "admin-s3cret")],
    );
    assert!(!String::from_utf8_lossy(&help.stdout).contains("s3cret"));
}

#[test]
fn app_server_threads_take_the_session_settings_codex_app_server_accepts() {
    let sandbox = Sandbox::new();
    let args = [
        "serve",
        "--app-server",
        "--cwd",
        "/work/project",
        "--model",
        "gpt-5",
        "--approval-policy",
        "never",
        "--sandbox",
        "workspace-write",
        "--sessions",
        "2",
    ];
    let printed = sandbox.print(&words(&args), &[("CODEX_HOME", "/home/me/.codex")]);
    assert_eq!(
        value_at(&printed, "app_server.codex_home"),
        Some(&Value::String("/home/me/.codex".into()))
    );
    assert_eq!(value_at(&printed, "serve.sessions"), Some(&Value::Integer(2)));
    let refusal = refused(
        &sandbox,
        &["serve", "--app-server", "--approval-policy", "on-failure"],
        &[],
    );
    assert!(
        refusal.contains("on-failure") && refusal.contains("on-request"),
        "{refusal}"
    );
}

#[test]
fn settings_that_mean_nothing_to_the_chosen_upstream_are_usage_errors() {
    let sandbox = Sandbox::new();
    let cases: [(&[&str], &str); 6] = [
        (&["--app-server", "--session", "s1"], "--session"),
        (&["--app-server", "--all-sessions"], "--all-sessions"),
        (
            &["--app-server", "--manager-url", "http://127.0.0.1:1"],
            "--manager-url",
        ),
        (&["--app-server", "--manager-ca", "/etc/ssl/cm-ca.pem"], "--manager-ca"),
        (&["--app-server", "--sessions", "0"], "--sessions"),
        (&["--restart"], "--restart"),
    ];
    for (args, named) in cases {
        let stderr = refused(&sandbox, &[&["serve"], args].concat(), &[]);
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
    let from_variable = refused(
        &sandbox,
        &["serve", "--app-server"],
        &[("SKILLBRIDGE_ALL_SESSIONS", "1")],
    );
    assert!(
        from_variable.contains("--all-sessions cannot be used with --app-server"),
        "{from_variable}"
    );
    assert!(refused(&sandbox, &["serve", "--codex-home", "/x"], &[]).contains("--codex-home"));
}

#[test]
fn a_group_of_bridges_serves_the_groups_sessions_and_its_store_password_never_shows() {
    let sandbox = Sandbox::new();
    let group = sandbox.print(
        &words(&["serve", "--sessions", "0", "--cluster", "redis://127.0.0.1:1/0"]),
        &[],
    );
    assert_eq!(value_at(&group, "serve.sessions"), Some(&Value::Integer(0)));
    let output = sandbox.run(
        &words(&["serve", "--print-config"]),
        &[("SKILLBRIDGE_CLUSTER", "redis://:hunter2@127.0.0.1:1/0")],
    );
    assert_eq!(output.status.code(), Some(0));
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.contains(r#"url = "redis://<redacted>@127.0.0.1:1/0""#), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let help = sandbox.run(
        &words(&["serve", "--help"]),
        &[("SKILLBRIDGE_CLUSTER", "redis://:hunter2@h:1/0")],
    );
    assert!(!String::from_utf8_lossy(&help.stdout).contains("hunter2"));

    let cases: [(&[&str], &str); 4] = [
        (&["--cluster", "redis://127.0.0.1:1/0", "--app-server"], "--cluster"),
        (&["--cluster", "http://127.0.0.1:1"], "redis://"),
        (
            &["--cluster", "redis://127.0.0.1:1/0", "--cluster-group", "a:b"],
            "group",
        ),
        (
            &["--cluster", "redis://127.0.0.1:1/0", "--cluster-lease", "10ms"],
            "lease",
        ),
    ];
    for (args, named) in cases {
        let stderr = refused(&sandbox, &[&["serve"], args].concat(), &[]);
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
}

#[test]
fn send_app_server_reads_a_lone_value_as_the_prompt() {
    let sandbox = Sandbox::new();
    let program = |args: &[&str]| {
        let printed = sandbox.print(&words(args), &[]);
        assert_eq!(
            value_at(&printed, "app_server.enabled"),
            Some(&Value::Boolean(true)),
            "{args:?}"
        );
        value_at(&printed, "app_server.program").cloned()
    };
    assert_eq!(program(&["send", "--app-server", "count the words"]), None);
    assert_eq!(
        program(&["send", "--app-server", "/opt/codex", "count the words"]),
        Some(Value::String("/opt/codex".into()))
    );
    assert_eq!(program(&["send", "count the words", "--app-server"]), None);
    assert!(refused(&sandbox, &["send", "--app-server"], &[]).contains("prompt"));
    assert!(refused(&sandbox, &["send", "--app-server", "hi", "--keep-session"], &[]).contains("--keep-thread"));
    assert!(refused(&sandbox, &["send", "hi", "--keep-thread"], &[]).contains("--keep-thread"));
    assert!(refused(&sandbox, &["send", "--app-server", "hi", "--codex-log", " "], &[]).contains("--codex-log"));
    assert_eq!(
        sandbox.run(&words(&["send"]), &[]).status.code(),
        Some(2),
        "the prompt is required"
    );
}
