use skillbridge::skill;

// Every problem is reported in one build, each on its own span.
#[skill(name = "", timeout = "5 minutes", colour = "blue")]
fn everything_wrong<T>(label: &str, (a, b): (u8, u8), value: T) -> String {
    let _ = (a, b, value);
    label.to_owned()
}

fn main() {}
