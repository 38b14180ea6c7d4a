//! Server-rendered pages from templates/: sign-in, signed-in, device approval and error.

use minijinja::Environment;
use serde::Serialize;

/// The compiled templates, embedded in the binary.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        env.add_template("base.html", include_str!("../../templates/base.html"))?;
        env.add_template("login.html", include_str!("../../templates/login.html"))?;
        env.add_template("signed_in.html", include_str!("../../templates/signed_in.html"))?;
        env.add_template("device.html", include_str!("../../templates/device.html"))?;
        env.add_template("error.html", include_str!("../../templates/error.html"))?;
        env.add_template("admin.html", include_str!("../../templates/admin.html"))?;
        Ok(Self { env })
    }

    /// Renders `name` with `context`; HTML is escaped.
    pub fn render<S: Serialize>(&self, name: &str, context: S) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}
