use skillbridge::skill::SkillContext;
use skillbridge::{State, skill};

struct Vault;

/// Only plain parameters can be redacted.
#[skill]
fn open(#[skill(redact)] vault: State<Vault>, #[skill(redact)] ctx: SkillContext, #[skill(redact, redact)] pin: String) -> String {
    let _ = (&*vault, ctx);
    pin
}

fn main() {}
