#!/usr/bin/env bash
# Installs what building and testing vchat needs on Debian/Ubuntu, only when
# missing: a C toolchain (ring, OpenH264), nasm (OpenH264's assembly),
# ALSA headers and CMake (cpal, libopus), PulseAudio (the sound test),
# libclang (nokhwa's V4L2 bindings), openssl
# and ffmpeg (tests compare against them), Xvfb and screenshot tools (the
# window test), and Rust itself when cargo is absent.
set -euo pipefail

packages=(
  build-essential pkg-config curl ca-certificates
  libclang-dev clang        # nokhwa -> v4l2-sys-mit runs bindgen
  nasm                      # openh264's assembly: H.264 encodes ~3x faster with it
  openssl                   # tests: fingerprint vs openssl, TLS 1.2 client
  ffmpeg                    # tests: Y4M and H.264 interoperability (ffmpeg, ffprobe)
  xvfb x11-apps xdotool     # tests: the window under Xvfb, screenshots (xwd), key presses
  imagemagick               # tests: the window screenshots saved as PNG (convert)
  man-db                    # tests: `vchat manpage` rendered with man -l
  iproute2 ethtool util-linux python3 # tests: the network lab (namespaces, tbf, offloads off, chrt, the forwarder)
  faketime                  # tests: a peer whose clock is off (latency corrected by the pong's time)
  libasound2-dev            # cpal's ALSA backend (alsa-sys links libasound)
  cmake                     # opus: libopus is built from its bundled source with CMake
  pulseaudio pulseaudio-utils # tests: a real sound server with a null sink (speaker and microphone code)
  tor                       # tests: onion-service calls on a private Tor network (scripts/tornet; the tests never use the system's tor service)
  libx11-6 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libxkbcommon-x11-0 # winit on X11
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "setup: cargo is in ~/.cargo/bin; add it to PATH (source ~/.cargo/env)" >&2
  else
    echo "setup: installing Rust with rustup (https://rustup.rs)" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt -c clippy
  fi
fi

# Cargo.toml's rust-version (sonora, the echo canceller, needs 1.91).
need_rust=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$(dirname "$0")/../Cargo.toml")
have_rust=$(rustc --version 2>/dev/null | awk '{print $2}')
if [ -n "$need_rust" ] && [ -n "$have_rust" ] &&
  [ "$(printf '%s\n%s\n' "$need_rust" "$have_rust" | sort -V | head -n1)" != "$need_rust" ]; then
  if command -v rustup >/dev/null; then
    echo "setup: Rust $have_rust is older than $need_rust; updating with rustup" >&2
    rustup update stable >/dev/null
  else
    echo "setup: Rust $have_rust is older than the $need_rust vchat needs; install a newer one (https://rustup.rs)" >&2
    exit 1
  fi
fi
