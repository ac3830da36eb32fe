//! The `helpdesk` binary: the skillbridge command line (`skills`, `call`, `serve`, `send`) with the helpdesk's
//! skills, its runbooks read from the JSON file `HELPDESK_RUNBOOKS` names (the shipped `runbooks.json` otherwise).

use std::process::ExitCode;

fn main() -> ExitCode {
    let runbooks = match std::env::var_os("HELPDESK_RUNBOOKS") {
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("error: cannot read the runbooks at {}: {error}", path.to_string_lossy());
                return ExitCode::from(2);
            }
        },
        None => helpdesk::DEFAULT_RUNBOOKS.to_owned(),
    };
    match helpdesk::app(&runbooks) {
        Ok(app) => app.run(),
        Err(error) => {
            eprintln!("error: the runbooks do not make skills: {error}");
            ExitCode::from(2)
        }
    }
}
