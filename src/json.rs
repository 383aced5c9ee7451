//! Stricter JSON decoding than serde's defaults, so the server accepts exactly what the
//! OpenAPI document describes.

use serde::{Deserialize, Deserializer};

/// Deserializes `T` from a JSON object only (serde's derive would also take an array).
#[derive(Debug, Clone)]
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

/// `#[serde(deserialize_with = "json::object")]`: an optional struct given as a JSON object
/// (an array is refused).
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Option::<Obj<T>>::deserialize(d)?.map(|Obj(t)| t))
}

/// `#[serde(deserialize_with = "json::objects")]`: an optional list of structs, each given as
/// a JSON object.
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    Ok(Option::<Vec<Obj<T>>>::deserialize(d)?
        .map(|items| items.into_iter().map(|Obj(t)| t).collect()))
}

/// An optional integer that also accepts integral floats (`30.0`), as JSON Schema's `integer`
/// does.
pub fn optional_integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
        _ => Err(D::Error::custom(format!(
            "invalid value {n}, expected an integer"
        ))),
    }
}

/// `#[serde(default, deserialize_with = "json::nullable")]`: a field that may be left out
/// (`None`), set to `null` (`Some(None)`: clear it) or given (`Some(Some(v))`).
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
