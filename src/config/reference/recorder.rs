//! A serde `Deserializer` that produces no data of its own but records the shape of what is
//! deserialized from it: every struct's field names (serde derive hands `deserialize_struct` its
//! static `FIELDS` list, `deny_unknown_fields` or not), each field's kind, and the names of the
//! variants when the field is an enum. It answers every request with a placeholder (0, `""`,
//! `false`, the first variant, one element per sequence, one entry per map), so the derived code
//! walks into every nested struct, `Option`, `Vec` and map value in one pass.
//!
//! Only `reference` uses it; it knows nothing of logship's configuration.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

/// A key as the reference names it: its path (`kafka.tls.ca_file`, `sources.<>.include`,
/// `pipelines.<>.steps[].pattern`, with `<>` for a name the user chooses and `[]` for the items
/// of an array) and, for the keys of one source or step type, that type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyId {
    pub variant: Option<String>,
    pub path: String,
}

impl KeyId {
    pub fn new(variant: Option<&str>, path: impl Into<String>) -> Self {
        Self {
            variant: variant.map(str::to_owned),
            path: path.into(),
        }
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variant {
            Some(variant) => write!(f, "`{}` (type = \"{variant}\")", self.path),
            None => write!(f, "`{}`", self.path),
        }
    }
}

/// What the code says about a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInfo {
    /// `integer`, `float`, `boolean`, `string` (enums too), `table`, `array` or `any`.
    pub kind: &'static str,
    /// The values an enum key takes, as written in TOML.
    pub values: Vec<&'static str>,
}

pub type Keys = BTreeMap<KeyId, KeyInfo>;

/// Joins a key path and a key.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Records the keys of `T` as found at `path` (the struct's own path; `""` for the root).
pub fn record<T: DeserializeOwned>(
    keys: &RefCell<Keys>,
    variant: Option<&str>,
    path: &str,
) -> Result<(), String> {
    T::deserialize(Recorder::root(keys, variant, path))
        .map(drop)
        .map_err(|Stop(reason)| format!("cannot walk {path:?}: {reason}"))
}

/// Records the key `path` itself, with `T`'s kind and values.
pub fn record_key<T: DeserializeOwned>(
    keys: &RefCell<Keys>,
    variant: Option<&str>,
    path: &str,
) -> Result<(), String> {
    T::deserialize(Recorder::of_key(keys, variant, path.to_owned()))
        .map(drop)
        .map_err(|Stop(reason)| format!("cannot walk {path:?}: {reason}"))
}

/// Why the walk stopped: a type asked for something the recorder does not answer.
#[derive(Debug)]
pub struct Stop(String);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

/// One value being deserialized, at `path`.
struct Recorder<'k> {
    keys: &'k RefCell<Keys>,
    variant: Option<&'k str>,
    path: String,
    /// The key this value is the whole of (its kind is this value's); `None` for the items of
    /// an array or the entries of a map, and at the root.
    key: Option<KeyId>,
    /// The key whose enum values this value's are: its own, or the array's or map's that holds
    /// it (`types = { status = "int" }`).
    owner: Option<KeyId>,
}

impl<'k> Recorder<'k> {
    fn root(keys: &'k RefCell<Keys>, variant: Option<&'k str>, path: &str) -> Self {
        Self {
            keys,
            variant,
            path: path.to_owned(),
            key: None,
            owner: None,
        }
    }

    fn of_key(keys: &'k RefCell<Keys>, variant: Option<&'k str>, path: String) -> Self {
        let key = KeyId::new(variant, path.clone());
        keys.borrow_mut().entry(key.clone()).or_default();
        Self {
            keys,
            variant,
            path,
            key: Some(key.clone()),
            owner: Some(key),
        }
    }

    fn kind(&self, kind: &'static str) {
        if let Some(key) = &self.key
            && let Some(info) = self.keys.borrow_mut().get_mut(key)
        {
            info.kind = kind;
        }
    }

    /// A value inside this one (an array's item, a map's entry) at `path`.
    fn inside(&self, path: String) -> Self {
        Self {
            keys: self.keys,
            variant: self.variant,
            path,
            key: None,
            owner: self.owner.clone(),
        }
    }
}

macro_rules! placeholder {
    ($($method:ident => $kind:literal, $visit:ident($value:expr);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
                self.kind($kind);
                visitor.$visit($value)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Recorder<'_> {
    type Error = Stop;

    placeholder! {
        deserialize_any => "any", visit_str("");
        deserialize_bool => "boolean", visit_bool(false);
        deserialize_i8 => "integer", visit_i8(0);
        deserialize_i16 => "integer", visit_i16(0);
        deserialize_i32 => "integer", visit_i32(0);
        deserialize_i64 => "integer", visit_i64(0);
        deserialize_i128 => "integer", visit_i128(0);
        deserialize_u8 => "integer", visit_u8(0);
        deserialize_u16 => "integer", visit_u16(0);
        deserialize_u32 => "integer", visit_u32(0);
        deserialize_u64 => "integer", visit_u64(0);
        deserialize_u128 => "integer", visit_u128(0);
        deserialize_f32 => "float", visit_f32(0.0);
        deserialize_f64 => "float", visit_f64(0.0);
        deserialize_char => "string", visit_char('x');
        deserialize_str => "string", visit_str("");
        deserialize_string => "string", visit_str("");
        deserialize_bytes => "string", visit_bytes(&[]);
        deserialize_byte_buf => "string", visit_bytes(&[]);
        deserialize_identifier => "string", visit_str("");
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.kind("any");
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.kind("array");
        visitor.visit_seq(One(Some(self.inside(format!("{}[]", self.path)))))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Stop> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.kind("table");
        visitor.visit_map(Entry {
            value: Some(self.inside(join(&self.path, "<>"))),
            key_given: false,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.kind("table");
        visitor.visit_map(Fields {
            parent: &self,
            fields: fields.iter(),
            current: None,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.kind("string");
        if let Some(owner) = &self.owner
            && let Some(info) = self.keys.borrow_mut().get_mut(owner)
        {
            info.values.extend(variants);
        }
        let first = variants
            .first()
            .ok_or_else(|| Stop(format!("enum {name} has no variants")))?;
        visitor.visit_enum(IntoDeserializer::<Stop>::into_deserializer(*first))
    }
}

/// An array's one item.
struct One<'k>(Option<Recorder<'k>>);

impl<'de> SeqAccess<'de> for One<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        self.0.take().map(|item| seed.deserialize(item)).transpose()
    }
}

/// A map's one entry, keyed `""`.
struct Entry<'k> {
    value: Option<Recorder<'k>>,
    key_given: bool,
}

impl<'de> MapAccess<'de> for Entry<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        if self.key_given {
            return Ok(None);
        }
        self.key_given = true;
        seed.deserialize(IntoDeserializer::<Stop>::into_deserializer(""))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let value = self
            .value
            .take()
            .ok_or_else(|| Stop("a map value asked for twice".into()))?;
        seed.deserialize(value)
    }
}

/// A struct's fields: each one's name, then its value.
struct Fields<'r, 'k> {
    parent: &'r Recorder<'k>,
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<&'static str>,
}

impl<'de> MapAccess<'de> for Fields<'_, '_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = Some(field);
        seed.deserialize(IntoDeserializer::<Stop>::into_deserializer(*field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let field = self
            .current
            .take()
            .ok_or_else(|| Stop("a field value asked for before its name".into()))?;
        let parent = self.parent;
        seed.deserialize(Recorder::of_key(
            parent.keys,
            parent.variant,
            join(&parent.path, field),
        ))
    }
}
