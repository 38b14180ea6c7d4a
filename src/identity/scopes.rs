//! The scope vocabulary. Every API route names the scope it needs (see
//! `routes/mod.rs`); browser sessions hold every scope of their user, bearer
//! tokens the subset they were made with.

use serde::{Serialize, Serializer};

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read one's own account (`GET /me`) and change one's own password.
    Account,
    /// List and revoke one's own API tokens; trade for a service JWT at `POST /token`.
    Tokens,
    /// Read every user (`GET /users`). Admins only.
    UsersRead,
    /// Administer users: set anyone's password, see and revoke anyone's tokens. Admins only.
    UsersAdmin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Account, Scope::Tokens, Scope::UsersRead, Scope::UsersAdmin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Account => "account",
            Scope::Tokens => "tokens",
            Scope::UsersRead => "users:read",
            Scope::UsersAdmin => "users:admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScopeSet(u8);

impl ScopeSet {
    pub fn empty() -> Self {
        Self(0)
    }

    /// What a user holds: account and tokens for everyone, user administration for admins.
    pub fn for_user(is_admin: bool) -> Self {
        let mut set = ScopeSet::from_iter([Scope::Account, Scope::Tokens]);
        if is_admin {
            set = set.union(ScopeSet::from_iter([Scope::UsersRead, Scope::UsersAdmin]));
        }
        set
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_subset_of(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn union(self, other: ScopeSet) -> Self {
        Self(self.0 | other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses a space-separated list; unknown names are an error naming them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = ScopeSet::empty();
        for word in text.split_whitespace() {
            let scope = Scope::parse(word).ok_or_else(|| format!("unknown scope {word:?}"))?;
            set.0 |= scope.bit();
        }
        Ok(set)
    }

    /// Space-separated, as stored and as in the OAuth `scope` field.
    pub fn to_string_list(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Scope::as_str))
    }
}

/// In a JSON description (`/openapi.json`): a list of scope names.
impl utoipa::PartialSchema for ScopeSet {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        let name = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(Scope::ALL.map(Scope::as_str)));
        ArrayBuilder::new().items(name).unique_items(true).description(Some("Scope names")).build().into()
    }
}

impl utoipa::ToSchema for ScopeSet {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let set = ScopeSet::parse("tokens  account").unwrap();
        assert_eq!(set.to_string_list(), "account tokens");
        assert!(ScopeSet::parse("account root").unwrap_err().contains("root"));
        assert!(set.is_subset_of(ScopeSet::for_user(false)));
        assert!(!ScopeSet::for_user(true).is_subset_of(ScopeSet::for_user(false)));
        assert!(ScopeSet::for_user(true).contains(Scope::UsersAdmin));
        assert!(!ScopeSet::for_user(false).contains(Scope::UsersRead));
    }
}
