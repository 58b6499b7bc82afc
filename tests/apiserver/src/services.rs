//! ClusterIP and NodePort allocation, as the API server's allocators do it:
//! a requested address or port is honoured when free and in range, refused
//! when taken; dynamic ones come from the upper band, so the lower band
//! stays for static requests (the DNS Service's tenth address).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use crate::errors::FieldError;

pub const NODE_PORT_MIN: i64 = 30000;
pub const NODE_PORT_MAX: i64 = 32767;

#[derive(Clone, Debug)]
pub struct Alloc {
    base: u32,
    prefix: u8,
    size: u32,
    /// Address offset -> owning Service (`ns/name`).
    ips: BTreeMap<u32, String>,
    /// NodePort -> owning Service.
    ports: BTreeMap<i64, String>,
}

pub fn parse_cidr(cidr: &str) -> Option<(u32, u8)> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 30)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((u32::from(ip) & mask, len))
}

impl Alloc {
    pub fn new(service_cidr: &str) -> Alloc {
        let (base, prefix) = parse_cidr(service_cidr).unwrap_or((0x0a60_0000, 12));
        Alloc {
            base,
            prefix,
            size: 1u32 << (32 - prefix),
            ips: BTreeMap::new(),
            ports: BTreeMap::new(),
        }
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }

    /// The n-th address of the range (1: the `kubernetes` Service, 10: DNS).
    pub fn nth(&self, n: u32) -> String {
        Ipv4Addr::from(self.base + n).to_string()
    }

    fn offset(&self, ip: &str) -> Option<u32> {
        let ip: Ipv4Addr = ip.parse().ok()?;
        let o = u32::from(ip).wrapping_sub(self.base);
        (o > 0 && o < self.size - 1).then_some(o)
    }

    fn dynamic_ip(&self) -> Option<u32> {
        // The static band: min(max(16, size/16), 256) addresses.
        let band = (self.size / 16).clamp(16, 256);
        (band..self.size - 1)
            .chain(1..band)
            .find(|o| !self.ips.contains_key(o))
    }

    fn dynamic_port(&self) -> Option<i64> {
        let band = ((NODE_PORT_MAX - NODE_PORT_MIN + 1) / 32).clamp(16, 128);
        (NODE_PORT_MIN + band..=NODE_PORT_MAX)
            .chain(NODE_PORT_MIN..NODE_PORT_MIN + band)
            .find(|p| !self.ports.contains_key(p))
    }

    pub fn release(&mut self, owner: &str) {
        self.ips.retain(|_, o| o != owner);
        self.ports.retain(|_, o| o != owner);
    }

    /// Fills in (or checks) a Service's `clusterIP(s)` and node ports,
    /// keeping what `old` had. Commits nothing on error.
    pub fn assign(
        &mut self,
        owner: &str,
        svc: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), Vec<FieldError>> {
        let mut next = self.clone();
        next.release(owner);
        let mut errs = Vec::new();
        let ty = svc["spec"]["type"]
            .as_str()
            .unwrap_or("ClusterIP")
            .to_string();
        let spec = svc["spec"].as_object_mut().expect("defaulted spec");
        let old_ip = old
            .and_then(|o| o["spec"]["clusterIP"].as_str())
            .map(str::to_string);
        if ty == "ExternalName" {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        } else {
            let asked = spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .or_else(|| {
                    spec.get("clusterIPs")
                        .and_then(|v| v[0].as_str())
                        .map(str::to_string)
                });
            let ip = match (&old_ip, asked) {
                (Some(o), Some(a)) if *o != a => {
                    errs.push(FieldError::invalid_raw(
                        "spec.clusterIPs[0]",
                        format!("{a:?}"),
                        "may not change once set",
                    ));
                    Some(o.clone())
                }
                (Some(o), _) => Some(o.clone()),
                (None, Some(a)) if a == "None" => Some(a),
                (None, Some(a)) => match next.offset(&a) {
                    None => {
                        errs.push(FieldError::invalid_raw(
                            "spec.clusterIPs",
                            format!("[]string{{{a:?}}}"),
                            format!("failed to allocate IP {a}: the provided IP ({a}) is not in the valid range. The range of valid IPs is {}", self.cidr()),
                        ));
                        None
                    }
                    Some(o) if next.ips.contains_key(&o) => {
                        errs.push(FieldError::invalid_raw(
                            "spec.clusterIPs",
                            format!("[]string{{{a:?}}}"),
                            format!("failed to allocate IP {a}: provided IP is already allocated"),
                        ));
                        None
                    }
                    Some(_) => Some(a),
                },
                (None, None) => match next.dynamic_ip() {
                    Some(o) => Some(Ipv4Addr::from(self.base + o).to_string()),
                    None => {
                        errs.push(FieldError::invalid_raw(
                            "spec.clusterIPs",
                            "[]string{}".into(),
                            "failed to allocate IP: range is full",
                        ));
                        None
                    }
                },
            };
            if let Some(ip) = ip {
                if let Some(o) = next.offset(&ip) {
                    next.ips.insert(o, owner.to_string());
                }
                spec.insert("clusterIP".into(), json!(ip));
                spec.insert("clusterIPs".into(), json!([ip]));
                if ip != "None" {
                    spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
                    spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
                }
            }
        }
        let with_ports = ty == "NodePort" || ty == "LoadBalancer";
        let old_ports: Vec<(i64, String, i64)> = old
            .and_then(|o| o["spec"]["ports"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    p["port"].as_i64()?,
                    p["protocol"].as_str().unwrap_or("TCP").to_string(),
                    p["nodePort"].as_i64()?,
                ))
            })
            .collect();
        let mut seen: Vec<i64> = Vec::new();
        for (i, p) in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(p) = p.as_object_mut() else { continue };
            if !with_ports {
                continue;
            }
            let field = format!("spec.ports[{i}].nodePort");
            let asked = p
                .get("nodePort")
                .and_then(Value::as_i64)
                .filter(|n| *n != 0);
            let port = match asked {
                Some(n) if !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&n) => {
                    errs.push(FieldError::invalid(
                        field,
                        &json!(n),
                        format!("provided port is not in the valid range. The range of valid ports is {NODE_PORT_MIN}-{NODE_PORT_MAX}"),
                    ));
                    continue;
                }
                Some(n) if seen.contains(&n) => {
                    errs.push(FieldError::duplicate(field, &json!(n)));
                    continue;
                }
                Some(n) if next.ports.contains_key(&n) => {
                    errs.push(FieldError::invalid(
                        field,
                        &json!(n),
                        "provided port is already allocated",
                    ));
                    continue;
                }
                Some(n) => n,
                None => {
                    let key = (
                        p.get("port").and_then(Value::as_i64).unwrap_or(0),
                        p.get("protocol")
                            .and_then(Value::as_str)
                            .unwrap_or("TCP")
                            .to_string(),
                    );
                    let kept = old_ports
                        .iter()
                        .find(|(port, proto, n)| {
                            (*port, proto.clone()) == key && !next.ports.contains_key(n)
                        })
                        .map(|(_, _, n)| *n);
                    match kept.or_else(|| next.dynamic_port()) {
                        Some(n) => n,
                        None => {
                            errs.push(FieldError::invalid(field, &json!(0), "range is full"));
                            continue;
                        }
                    }
                }
            };
            seen.push(port);
            next.ports.insert(port, owner.to_string());
            p.insert("nodePort".into(), json!(port));
        }
        if errs.is_empty() {
            *self = next;
            Ok(())
        } else {
            Err(errs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_addresses_leave_the_static_band_free() {
        let mut a = Alloc::new("10.96.0.0/12");
        let mut s = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
        a.assign("default/a", &mut s, None).unwrap();
        let ip = s["spec"]["clusterIP"].as_str().unwrap().to_string();
        assert_eq!(ip, "10.96.1.0");
        let mut dns = json!({"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "ports": [{"port": 53}]}});
        a.assign("kube-system/kube-dns", &mut dns, None).unwrap();
        let mut again = json!({"spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53}]}});
        let errs = a.assign("default/b", &mut again, None).unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .ends_with("provided IP is already allocated"),
            "{}",
            errs[0]
        );
        let mut outside = json!({"spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 53}]}});
        let errs = a.assign("default/c", &mut outside, None).unwrap_err();
        assert!(
            errs[0]
                .to_string()
                .contains("The range of valid IPs is 10.96.0.0/12"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn node_ports_are_validated_and_unique() {
        let mut a = Alloc::new("10.96.0.0/12");
        let mut s = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]}});
        a.assign("default/a", &mut s, None).unwrap();
        assert_eq!(s["spec"]["ports"][1]["nodePort"], json!(30000 + 85 + 1));
        let mut taken =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}});
        let errs = a.assign("default/b", &mut taken, None).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
        );
        let mut range =
            json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}});
        let errs = a.assign("default/b", &mut range, None).unwrap_err();
        assert!(errs[0]
            .to_string()
            .contains("The range of valid ports is 30000-32767"));
        let mut dup = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}, {"port": 81, "nodePort": 31000}]}});
        let errs = a.assign("default/b", &mut dup, None).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "spec.ports[1].nodePort: Duplicate value: 31000"
        );
        // The same Service keeps its ports on update.
        let old = s.clone();
        let mut upd = json!({"spec": {"type": "NodePort", "clusterIP": old["spec"]["clusterIP"], "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]}});
        a.assign("default/a", &mut upd, Some(&old)).unwrap();
        assert_eq!(
            upd["spec"]["ports"][1]["nodePort"],
            old["spec"]["ports"][1]["nodePort"]
        );
    }
}
