use super::*;

#[test]
fn default_martians_parse_and_spare_real_sources() {
    let nets: Vec<IpNet> = DEFAULT_MARTIANS
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    for real in [
        "10.1.2.3",
        "192.168.1.1",
        "198.18.0.1",
        "100.64.0.1",
        "2001:2::1",
        "fe80::1",
    ] {
        let ip: IpAddr = real.parse().unwrap();
        assert!(
            !nets.iter().any(|n| n.contains(&ip)),
            "{real} must not be a martian"
        );
    }
    for bogus in [
        "0.1.2.3",
        "127.0.0.1",
        "224.0.0.5",
        "255.255.255.255",
        "::1",
        "ff02::1",
    ] {
        let ip: IpAddr = bogus.parse().unwrap();
        assert!(
            nets.iter().any(|n| n.contains(&ip)),
            "{bogus} must be a martian"
        );
    }
}
