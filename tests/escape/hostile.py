"""The apps of the escape battery, written for it: programs that run inside the sandbox
with the host's /usr/bin/python3 and nothing but the standard library.

MINIBAR is the well-behaved neighbour: it counts heartbeats into its data directory and
keeps a secret there. ATTACKER is the hostile daemon: it takes orders from files the
test drops in its inbox (so every attempt comes from the supervised, confined daemon
itself, with its limits, proxy and all) and writes what it got to its outbox.
Attacks that could take the daemon down with them run in child processes.
"""

MINIBAR = r'''#!/usr/bin/python3
import os, time
data = os.environ["EDGEWARD_DATA"]
with open(os.path.join(data, "secret.txt"), "w") as f:
    f.write("minibar api key: not for the neighbours\n")
os.chmod(os.path.join(data, "secret.txt"), 0o600)
beat = 0
while True:
    beat += 1
    tmp = os.path.join(data, ".beat")
    with open(tmp, "w") as f:
        f.write(str(beat))
    os.replace(tmp, os.path.join(data, "beat"))
    time.sleep(0.1)
'''

ATTACKER = r'''#!/usr/bin/python3
import ctypes, json, os, signal, socket, subprocess, sys, time
data = os.environ["EDGEWARD_DATA"]
inbox, outbox = os.path.join(data, "inbox"), os.path.join(data, "outbox")
os.makedirs(inbox, exist_ok=True)  # the test (root) drops its orders here
libc = ctypes.CDLL(None, use_errno=True)
NR = {"x86_64": {"ptrace": 101, "mount": 165, "finit_module": 313, "init_module": 175,
                 "personality": 135},
      "aarch64": {"ptrace": 117, "mount": 40, "finit_module": 273, "init_module": 105,
                  "personality": 92}}[os.uname().machine]


def syscall(name, *args):
    result = libc.syscall(NR[name], *args)
    return f"{name} -> {result} {os.strerror(ctypes.get_errno()) if result < 0 else ''}"


def run(argv, timeout=30):
    done = subprocess.run(argv, capture_output=True, timeout=timeout)
    return f"exit {done.returncode}: {(done.stdout + done.stderr).decode(errors='replace')}"


def attack(name, arg):
    if name == "read":
        with open(arg) as f:
            return "READ " + f.read(100)
    if name == "write":
        with open(arg, "w") as f:
            f.write("pwned")
        return "WROTE"
    if name in NR:
        return syscall(name, *(arg or []))
    if name == "raw":
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        return "RAW SOCKET OPEN"
    if name == "connect":
        with socket.create_connection(("127.0.0.1", int(arg)), 3) as s:
            return "CONNECTED " + s.recv(20).decode()
    if name == "signal":
        os.kill(int(arg), signal.SIGKILL)
        return "SIGNALLED"
    if name == "serial":
        with open(arg, "w") as f:
            f.write("AT+HACK\r\n")
        return "WROTE SERIAL"
    if name == "dbus":
        dest, path, method = arg
        return run(["dbus-send", "--system", "--print-reply", f"--dest={dest}", path, method])
    if name == "forkbomb":
        return run(["/bin/sh", "-c", "for i in $(seq 100); do sleep 2 & done; wait"])
    if name == "memory":
        return run([sys.executable, "-c", "b = bytearray(512 << 20); print('ATE IT')"])
    if name == "cpu":
        return run([sys.executable, "-c", "import os, time\nos.fork()\nend = time.time() + 3\n"
                    "while time.time() < end: pass"])
    if name == "setuid":
        return run(["/usr/bin/mount", "-t", "tmpfs", "none", "/mnt"]) + f" uid {os.getuid()}"
    if name == "disguised":  # a program of its own, named like the sandbox's helpers
        path = os.path.join(data, arg)
        with open("/usr/bin/cat", "rb") as src, open(path, "wb") as dst:
            dst.write(src.read())
        os.chmod(path, 0o755)
        return run([path, "/etc/shadow"])
    if name == "flood":
        for _ in range(int(arg)):
            libc.syscall(NR["personality"], 0xffffffff)
            libc.syscall(NR["mount"], b"x", b"/tmp", b"tmpfs", 0, 0)
        return "FLOODED"
    return "unknown order"


while True:
    for order in sorted(n for n in os.listdir(inbox) if n.endswith(".json")):
        path = os.path.join(inbox, order)
        with open(path) as f:
            wanted = json.load(f)
        try:
            result = attack(wanted["name"], wanted.get("arg"))
        except Exception as e:
            result = f"FAILED {type(e).__name__}: {e}"
        os.makedirs(outbox, exist_ok=True)
        with open(os.path.join(outbox, ".tmp"), "w") as f:
            json.dump({"result": result}, f)
        os.replace(os.path.join(outbox, ".tmp"), os.path.join(outbox, order))
        os.unlink(path)
    os.makedirs(outbox, exist_ok=True)
    time.sleep(0.05)
'''
