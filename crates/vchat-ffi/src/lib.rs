//! The only `unsafe` code vchat has, kept to three calls that no safe crate
//! offers, each behind a safe function:
//!
//! - [`tcp_info`]: `getsockopt(TCP_INFO)`, what the kernel knows about a TCP
//!   connection (smoothed RTT, delivery rate, bytes not yet sent). socket2,
//!   nix and rustix do not expose it; vchat's rate control and its honest
//!   RTT need it.
//! - [`set_max_pacing_rate`]: `setsockopt(SO_MAX_PACING_RATE)`, which
//!   spreads a TCP socket's bursts over time (socket2 and rustix lack it).
//!   A keyframe sent at the line's rate fills the bottleneck's queue, and
//!   the voice datagrams beside the stream wait in it or are dropped.
//! - [`set_h264_bitrate`]: OpenH264's `SetOption(ENCODER_OPTION_BITRATE)`.
//!   The openh264 crate applies a bitrate only when an encoder is built, and
//!   building a new one costs a keyframe (tens of kilobytes) each time the
//!   rate control moves.
//!
//! The vchat crate itself stays `#![forbid(unsafe_code)]`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

/// What the kernel reports about one TCP connection (Linux `struct
/// tcp_info`). Fields a kernel too old to report them leaves at zero read
/// as `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Its mean deviation.
    pub rtt_var: Duration,
    /// The smallest RTT seen on the connection (Linux 4.6+).
    pub min_rtt: Option<Duration>,
    /// Congestion window, in segments.
    pub congestion_window: u32,
    /// Bytes per second the most recent acknowledged data was delivered at
    /// (Linux 4.9+).
    pub delivery_rate: Option<u64>,
    /// Whether that rate was measured while the sender had too little to
    /// send to fill the path (then it says nothing about the path's rate).
    pub delivery_rate_app_limited: bool,
    /// Bytes the application wrote that the kernel has not sent yet (Linux 4.6+).
    pub notsent_bytes: Option<u32>,
    /// Segments sent but not yet acknowledged.
    pub unacked: u32,
    /// Segments retransmitted over the connection's life.
    pub total_retransmits: u32,
    /// Bytes acknowledged by the peer over the connection's life (Linux 4.1+).
    pub bytes_acked: Option<u64>,
}

// Offsets in the kernel's `struct tcp_info` (include/uapi/linux/tcp.h). The
// kernel only ever appends fields, so these hold for every kernel, and
// getsockopt says how many bytes this one filled in.
const APP_LIMITED_BYTE: usize = 7;
const UNACKED: usize = 24;
const RTT: usize = 68;
const RTT_VAR: usize = 72;
const SND_CWND: usize = 80;
const TOTAL_RETRANS: usize = 100;
const BYTES_ACKED: usize = 120;
const NOTSENT_BYTES: usize = 144;
const MIN_RTT: usize = 148;
const DELIVERY_RATE: usize = 160;
/// Room for every field a kernel may add for years.
const BUFFER_LEN: usize = 512;

/// Reads `TCP_INFO` for a connected TCP socket.
pub fn tcp_info(socket: &impl AsFd) -> io::Result<TcpInfo> {
    let mut buffer = [0u8; BUFFER_LEN];
    let mut len = BUFFER_LEN as libc::socklen_t;
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: `fd` is a file descriptor borrowed for the call; the kernel
    // writes at most `len` bytes into `buffer`, which is `len` bytes long,
    // and updates `len` to what it wrote. Any error is returned as is.
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buffer.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(parse_tcp_info(&buffer[..(len as usize).min(BUFFER_LEN)]))
}

/// Caps the rate a socket sends at, in bytes per second
/// (`SO_MAX_PACING_RATE`; `u32::MAX`: no cap). On TCP, Linux 4.13+ paces
/// the socket itself (no `fq` qdisc needed): segments leave spread over
/// time instead of in a burst as large as the congestion window allows.
pub fn set_max_pacing_rate(socket: &impl AsFd, bytes_per_second: u32) -> io::Result<()> {
    let fd = socket.as_fd().as_raw_fd();
    let value = bytes_per_second;
    // SAFETY: `fd` is a file descriptor borrowed for the call; the kernel
    // reads exactly `size_of::<u32>()` bytes from `value`, which lives for
    // the call. Any error is returned as is.
    let result = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MAX_PACING_RATE,
            (&value as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The current cap of [`set_max_pacing_rate`], bytes per second.
pub fn max_pacing_rate(socket: &impl AsFd) -> io::Result<u64> {
    let fd = socket.as_fd().as_raw_fd();
    let mut value = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: as in `tcp_info`: the kernel writes at most `len` bytes into
    // `value`, which is `len` bytes long, and says how many it wrote.
    let result = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MAX_PACING_RATE,
            (&mut value as *mut u64).cast(),
            &mut len,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    // A kernel that wrote 4 bytes wrote a u32 in native order.
    Ok(match len {
        4 => {
            let first = value.to_ne_bytes();
            u64::from(u32::from_ne_bytes([first[0], first[1], first[2], first[3]]))
        }
        _ => value,
    })
}

/// The fields of a `struct tcp_info` of `filled.len()` bytes, in native byte order.
fn parse_tcp_info(filled: &[u8]) -> TcpInfo {
    let u32_at = |offset: usize| -> Option<u32> {
        let bytes = filled.get(offset..offset + 4)?;
        Some(u32::from_ne_bytes(bytes.try_into().ok()?))
    };
    let u64_at = |offset: usize| -> Option<u64> {
        let bytes = filled.get(offset..offset + 8)?;
        Some(u64::from_ne_bytes(bytes.try_into().ok()?))
    };
    let micros = |v: u32| Duration::from_micros(u64::from(v));
    TcpInfo {
        rtt: u32_at(RTT).map(micros).unwrap_or_default(),
        rtt_var: u32_at(RTT_VAR).map(micros).unwrap_or_default(),
        min_rtt: u32_at(MIN_RTT)
            .filter(|&v| v != 0 && v != u32::MAX)
            .map(micros),
        congestion_window: u32_at(SND_CWND).unwrap_or(0),
        delivery_rate: u64_at(DELIVERY_RATE),
        delivery_rate_app_limited: filled
            .get(APP_LIMITED_BYTE)
            .is_some_and(|byte| byte & 1 != 0),
        notsent_bytes: u32_at(NOTSENT_BYTES),
        unacked: u32_at(UNACKED).unwrap_or(0),
        total_retransmits: u32_at(TOTAL_RETRANS).unwrap_or(0),
        bytes_acked: u64_at(BYTES_ACKED),
    }
}

/// Changes the target (and maximum) bitrate of a running OpenH264 encoder
/// from `from` to `to` bits per second, effective from the next picture and
/// without a keyframe.
///
/// The encoder must have encoded at least one picture: OpenH264 initialises
/// it then (before, the call is refused with an error, not undefined
/// behaviour, but vchat does not rely on that).
pub fn set_h264_bitrate(
    encoder: &mut openh264::encoder::Encoder,
    from: u32,
    to: u32,
) -> Result<(), String> {
    use openh264_sys2::{
        ENCODER_OPTION_BITRATE as TARGET, ENCODER_OPTION_MAX_BITRATE as MAX,
        SPATIAL_LAYER_0 as LAYER, SPATIAL_LAYER_ALL as ALL,
    };
    // OpenH264 refuses a target above the layer's maximum at every step:
    // going up, the maximum moves first; going down, the target does.
    let steps = if to > from {
        [(MAX, LAYER), (MAX, ALL), (TARGET, ALL)]
    } else {
        [(TARGET, ALL), (MAX, LAYER), (MAX, ALL)]
    };
    let bitrate = i32::try_from(to).unwrap_or(i32::MAX);
    for (option, layer) in steps {
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: layer,
            iBitrate: bitrate,
        };
        // SAFETY: `raw_api` is unsafe because raw calls may break the
        // wrapper's assumptions; these two options change only the rate
        // control's target, which the wrapper does not track. OpenH264
        // reads an `SBitrateInfo` through the pointer for both options and
        // keeps no reference to it after returning.
        let status = unsafe {
            encoder
                .raw_api()
                .set_option(option, std::ptr::addr_of_mut!(info).cast())
        };
        if status != 0 {
            return Err(format!(
                "OpenH264 refused bitrate {to} (option {option}, status {status})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pacing_cap_set_is_read_back() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // No cap by default (~0 of the width the kernel reports).
        assert!(max_pacing_rate(&tcp).unwrap() >= u64::from(u32::MAX));
        set_max_pacing_rate(&tcp, 250_000).unwrap();
        assert_eq!(max_pacing_rate(&tcp).unwrap(), 250_000);
    }

    #[test]
    fn offsets_are_the_kernels() {
        use std::mem::offset_of;
        assert_eq!(offset_of!(libc::tcp_info, tcpi_unacked), UNACKED);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_rtt), RTT);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_rttvar), RTT_VAR);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_snd_cwnd), SND_CWND);
        assert_eq!(
            offset_of!(libc::tcp_info, tcpi_total_retrans),
            TOTAL_RETRANS
        );
        assert_eq!(offset_of!(libc::tcp_info, tcpi_bytes_acked), BYTES_ACKED);
        assert_eq!(
            offset_of!(libc::tcp_info, tcpi_notsent_bytes),
            NOTSENT_BYTES
        );
        assert_eq!(offset_of!(libc::tcp_info, tcpi_min_rtt), MIN_RTT);
        assert_eq!(
            offset_of!(libc::tcp_info, tcpi_delivery_rate),
            DELIVERY_RATE
        );
    }

    #[test]
    fn a_short_struct_leaves_newer_fields_unknown() {
        let mut old_kernel = vec![0u8; 104];
        old_kernel[RTT..RTT + 4].copy_from_slice(&1500u32.to_ne_bytes());
        let info = parse_tcp_info(&old_kernel);
        assert_eq!(info.rtt, Duration::from_micros(1500));
        assert_eq!(info.delivery_rate, None);
        assert_eq!(info.notsent_bytes, None);
        assert_eq!(parse_tcp_info(&[]), TcpInfo::default());
    }

    #[test]
    fn a_connected_socket_reports_its_rtt_and_unsent_bytes() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        client.write_all(&[1; 1000]).unwrap();
        let info = tcp_info(&client).unwrap();
        assert!(info.rtt > Duration::ZERO, "{info:?}");
        assert!(info.notsent_bytes.is_some(), "{info:?}");
        assert!(info.delivery_rate.is_some(), "{info:?}");
        let listener_info = tcp_info(&listener);
        assert!(listener_info.is_ok() || listener_info.is_err());
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(tcp_info(&udp).is_err(), "not a TCP socket");
    }
}
