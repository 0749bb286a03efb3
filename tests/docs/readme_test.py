#!/usr/bin/python3
"""Runs the README's code blocks that are marked to run, as a reader would:
with actsvc and actsvc-server installed (`cmake --install` into a temporary
prefix, first on PATH) and a server on a free loopback port standing in for
localhost:50051.

Every ```sh and ```python block must follow a marker line:
  <!-- doc-test: run -->                    run it
  <!-- doc-test: run (needs TOOL) -->       run it when TOOL is on PATH
  <!-- doc-test: needs a cluster (...) -->  not run here: needs Kubernetes
  <!-- doc-test: skip (reason) -->          not run, for the reason given
A block without a marker fails the test, so every new block gets a decision.

In the blocks that run, 50051 becomes the test server's port and a bare
`actsvc` talks to it. They run in a temporary directory holding links to the
checkout's examples/ and the build directory, so files they write land there.

Usage: readme_test.py --readme README.md --build BUILD_DIR [--list]
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MARKER = re.compile(r"<!--\s*doc-test:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w+)\s*$")
LANGUAGES = {"sh": "sh", "bash": "sh", "python": "python"}
PYTHON = "/usr/bin/python3"  # Debian's, with grpcio and numpy


class Block:
    def __init__(self, line, language, marker, text):
        self.line = line          # 1-based line of the opening fence
        self.language = language  # "sh" or "python"
        self.marker = marker      # the text after "doc-test:", or None
        self.text = text

    def decision(self):
        """("run", None), ("run", tool), or ("skip", why)."""
        if self.marker is None:
            return "missing", None
        if self.marker == "run":
            return "run", None
        m = re.fullmatch(r"run \(needs (\S+)\)", self.marker)
        if m:
            return "run", m.group(1)
        if self.marker.startswith(("skip", "needs a cluster")):
            return "skip", self.marker
        return "bad", self.marker


def parse(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        language = LANGUAGES.get(m.group(1))
        if language:
            previous = start - 1
            while previous >= 0 and not lines[previous].strip():
                previous -= 1
            marker = MARKER.search(lines[previous]) if previous >= 0 else None
            blocks.append(Block(start + 1, language,
                                marker.group(1) if marker else None,
                                "\n".join(lines[start + 1:end]) + "\n"))
        i = end + 1
    return blocks


def start_server(binary, log_path):
    log = open(log_path, "w")
    server = subprocess.Popen([binary, "--address=127.0.0.1:0"],
                              stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        text = open(log_path).read()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
        if m:
            return server, int(m.group(1))
        if server.poll() is not None:
            break
        time.sleep(0.1)
    stop_server(server)
    sys.exit("readme_test: the server did not start:\n" + open(log_path).read())


def stop_server(server):
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run_block(block, port, work, env):
    text = block.text.replace("50051", str(port))
    if block.language == "sh":
        script = ("set -euo pipefail\n"
                  'actsvc() { command actsvc --target=127.0.0.1:%d "$@"; }\n'
                  % port) + text
        command = ["bash", "-c", script]
    else:
        command = [PYTHON, "-c", text]
    try:
        result = subprocess.run(command, cwd=work, env=env, timeout=120,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    except subprocess.TimeoutExpired as e:
        return False, "timed out after 120 s\n" + (e.output or "")
    return result.returncode == 0, "exit %d\n%s" % (result.returncode,
                                                   result.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readme", required=True)
    parser.add_argument("--build", required=True, help="the build directory")
    parser.add_argument("--list", action="store_true",
                        help="print each block's decision and exit")
    args = parser.parse_args()
    readme = os.path.abspath(args.readme)
    repo = os.path.dirname(readme)
    build = os.path.abspath(args.build)

    blocks = parse(readme)
    problems = []
    for b in blocks:
        decision, detail = b.decision()
        if decision == "missing":
            problems.append("README.md:%d: a ```%s block without a "
                            "<!-- doc-test: ... --> marker" % (b.line,
                                                                b.language))
        elif decision == "bad":
            problems.append("README.md:%d: unknown marker 'doc-test: %s'"
                            % (b.line, detail))
    if args.list:
        for b in blocks:
            print("README.md:%d %s: %s" % (b.line, b.language, b.marker))
    if problems:
        print("\n".join(problems))
        return 1
    if args.list:
        return 0

    tmp = tempfile.mkdtemp(prefix="actsvc-readme-")
    server = None
    failed = []
    try:
        prefix = os.path.join(tmp, "prefix")
        subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                       check=True, stdout=subprocess.DEVNULL)
        bin_dir = os.path.join(prefix, "bin")
        for name in ("actsvc", "actsvc-server"):
            if not os.access(os.path.join(bin_dir, name), os.X_OK):
                print("readme_test: cmake --install put no %s in %s"
                      % (name, bin_dir))
                return 1
        work = os.path.join(tmp, "work")
        os.mkdir(work)
        os.symlink(os.path.join(repo, "examples"),
                   os.path.join(work, "examples"))
        os.symlink(build, os.path.join(work, "build"))
        env = dict(os.environ)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env["ACTSVC_STUBS"] = os.path.join(build, "python")
        env["ACTSVC_SERVER"] = os.path.join(bin_dir, "actsvc-server")
        server, port = start_server(env["ACTSVC_SERVER"],
                                    os.path.join(tmp, "server.log"))
        print("readme_test: server on 127.0.0.1:%d" % port)

        for b in blocks:
            decision, detail = b.decision()
            where = "README.md:%d (%s)" % (b.line, b.language)
            if decision == "skip":
                print("%s: not run: %s" % (where, detail))
                continue
            if detail and shutil.which(detail) is None:
                print("%s: not run: %s is not installed" % (where, detail))
                continue
            start = time.time()
            ok, output = run_block(b, port, work, env)
            print("%s: %s in %.1f s" % (where, "ok" if ok else "FAILED",
                                        time.time() - start))
            if not ok:
                failed.append(where)
                print(output)
        if server.poll() is not None:
            failed.append("the server (it died; its log follows)")
            print(open(os.path.join(tmp, "server.log")).read())
    finally:
        if server is not None:
            stop_server(server)
        shutil.rmtree(tmp, ignore_errors=True)
    if failed:
        print("readme_test: FAILED: " + ", ".join(failed))
        return 1
    print("readme_test: every runnable block ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
