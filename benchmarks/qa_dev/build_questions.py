"""Source of questions.jsonl (the grounded-QA dev set over the Python 3.11 docs).

    python benchmarks/qa_dev/build_questions.py     # rewrites questions.jsonl next to this file
    python benchmarks/qa_dev/check.py               # verifies it against the corpus

Standard library only. Edit the tables below, not questions.jsonl. Answer regexes are applied with
re.search(..., re.IGNORECASE) to the answer text; check.py verifies each one against the listed pages.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

# A yes/no answer may open with the bare word; the look-ahead keeps refusals such as
# "No information about this ..." from counting as a "no".
_REFUSAL_TAIL = r"(?!\s+(relevant\s+|such\s+|specific\s+)?(information|answer|mention|data|context|documentation|details|passage))"
NO = r"^\W*no\b" + _REFUSAL_TAIL
YES = r"^\W*yes\b"

L = "library/"

# (style, type, page, adjacent, question, [regexes], note)
#   style:    "users" (a practitioner's own words) or "manual" (the manual's phrasing)
#   type:     default | quantity | duration | name | yesno | definition | version
#   adjacent: True when the fact sits in a sentence next to (not in) the one describing the thing
ANSWERABLE = [
    # --- sqlite3 -------------------------------------------------------------------------------
    (
        "users",
        "duration",
        "sqlite3",
        True,
        "My script hits a locked SQLite database. How long will sqlite3 keep waiting before it gives up with an error?",
        [r"\b(5|five)(\.0)?\s*(s\b|sec(ond)?s?\b)"],
        "connect(timeout): 'How many seconds the connection should wait before raising an exception, if the database is locked by another connection. ... Default five seconds.'",
    ),
    (
        "users",
        "default",
        "sqlite3",
        True,
        "How many parsed SQL statements does a sqlite3 connection keep in its internal cache if I don't touch any settings?",
        [r"\b128\b"],
        "cached_statements: 'The number of statements that sqlite3 should internally cache for this connection, to avoid parsing overhead. By default, 128 statements.'",
    ),
    (
        "users",
        "default",
        "sqlite3",
        True,
        "If I call cursor.fetchmany() without a size, how many rows come back per call?",
        [
            r"\b(1|one|single)\s+row|arraysize\W+(is\W+|=\W*|defaults?\s+to\W+)1\b|default value is 1\b"
        ],
        "Cursor.arraysize: 'Read/write attribute that controls the number of rows returned by fetchmany(). The default value is 1 which means a single row would be fetched per call.'",
    ),
    (
        "users",
        "yesno",
        "sqlite3",
        False,
        "Can I open a sqlite3 connection in the main thread and use it from a worker thread without changing any options?",
        [NO + r"|ProgrammingError|check_same_thread"],
        "check_same_thread: 'If True (default), ProgrammingError will be raised if the database connection is used by a thread other than the one that created it.'",
    ),
    (
        "manual",
        "default",
        "sqlite3",
        False,
        "Which isolation_level does sqlite3.connect use by default when it opens transactions implicitly?",
        [r"DEFERRED"],
        'isolation_level: \'Can be "DEFERRED" (default), "EXCLUSIVE" or "IMMEDIATE"; or None to disable opening transactions implicitly.\'',
    ),
    # --- json ----------------------------------------------------------------------------------
    (
        "users",
        "default",
        "json",
        True,
        "When I pretty-print with json.dumps(indent=2), which item and key separators does it use unless I override them?",
        [
            r"['\"`],['\"`]\s*(,|and)\s*['\"`]:\s['\"`]|['\"`],['\"`]\s+(as|for)\s+(the\s+)?item|item\s+separator\W+(is\s+)?['\"`],['\"`]"
        ],
        "dump(): 'If specified, separators should be an (item_separator, key_separator) tuple. The default is (', ', ': ') if indent is None and (',', ': ') otherwise.'",
    ),
    (
        "users",
        "name",
        "json",
        False,
        "I switched off check_circular in json.dumps and passed it a list that contains itself. What error should I expect?",
        [r"RecursionError"],
        "'If check_circular is false (default: True), then the circular reference check for container types will be skipped and a circular reference will result in a RecursionError (or worse).'",
    ),
    (
        "users",
        "default",
        "json",
        True,
        "What does json.dumps write for float('inf') unless I turn allow_nan off?",
        [r"\bInfinity\b"],
        "'If allow_nan is true, their JavaScript equivalents (NaN, Infinity, -Infinity) will be used.'",
    ),
    # --- subprocess ----------------------------------------------------------------------------
    (
        "users",
        "name",
        "subprocess",
        False,
        "With shell=True on Linux, which program actually interprets my command string?",
        [r"/bin/sh\b"],
        "'On POSIX with shell=True, the shell defaults to /bin/sh.'",
    ),
    (
        "users",
        "yesno",
        "subprocess",
        True,
        "If Popen.communicate(timeout=...) runs out of time, is the child process killed for me?",
        [NO + r"|not killed|(is|does)\s*n[o']t\s+(get\s+)?kill|not\s+(automatically\s+)?kill"],
        "Popen.communicate: 'If the process does not terminate after timeout seconds, a TimeoutExpired exception will be raised. ... The child process is not killed if the timeout expires'",
    ),
    (
        "users",
        "name",
        "subprocess",
        True,
        "What exception does subprocess.run raise when the command runs longer than the timeout I gave it?",
        [r"TimeoutExpired"],
        "run(): 'If the timeout expires, the child process will be killed and waited for. The TimeoutExpired exception will be re-raised after the child process has terminated.'",
    ),
    # --- logging -------------------------------------------------------------------------------
    (
        "users",
        "default",
        "logging",
        False,
        "If I give logging.basicConfig a filename, does it overwrite the log file on each run or add to it?",
        [r"append|['\"`]a['\"`]"],
        "basicConfig filemode: 'If filename is specified, open the file in this mode. Defaults to 'a'.'",
    ),
    (
        "users",
        "default",
        "logging",
        True,
        "Before I configure anything, which level is the root logger set to?",
        [
            r"(?-i:\bWARNING\b)|\bwarning\b\s*(\(|level|severity)|(level|severity)\s+(is\s+|of\s+|set\s+to\s+)?warning|\b30\b"
        ],
        "Logger.setLevel: 'When a logger is created, the level is set to NOTSET ... Note that the root logger is created with level WARNING.'",
    ),
    (
        "users",
        "name",
        "logging",
        False,
        "How do I get every logging timestamp printed in GMT/UTC instead of local time?",
        [r"converter|gmtime"],
        "Formatter.formatTime: 'To change it for all formatters, for example if you want all logging times to be shown in GMT, set the converter attribute in the Formatter class.' (to time.gmtime)",
    ),
    (
        "users",
        "name",
        "logging",
        False,
        "A library already attached handlers to the root logger, so my logging.basicConfig() call does nothing. Which argument makes it replace them?",
        [r"\bforce\b"],
        "'This function does nothing if the root logger already has handlers configured, unless the keyword argument force is set to True.'",
    ),
    (
        "manual",
        "version",
        "logging",
        False,
        "In which Python version was the force argument added to logging.basicConfig?",
        [r"\b3\.8\b"],
        "basicConfig: '.. versionchanged:: 3.8 The force argument was added.'",
    ),
    (
        "users",
        "default",
        "logging",
        True,
        "What do logging's default timestamps look like, for example what separates the seconds from the milliseconds?",
        [r"%Y-%m-%d %H:%M:%S|\d{2}:\d{2}:\d{2},\d{3}|\bcomma\b"],
        "formatTime: 'Otherwise, the format '%Y-%m-%d %H:%M:%S,uuu' is used, where the uuu part is a millisecond value ... An example time in this format is 2003-01-23 00:29:50,411.'",
    ),
    # --- logging.handlers ----------------------------------------------------------------------
    (
        "users",
        "duration",
        "logging.handlers",
        True,
        "My SocketHandler lost its log server. What is the longest it will wait between reconnection attempts?",
        [r"\b30(\.0)?\s*(s\b|sec)|thirty seconds"],
        "createSocket: '... the handler will double the delay each time up to a maximum of 30 seconds.' / 'retryMax (maximum delay, defaulting to 30.0 seconds).'",
    ),
    (
        "users",
        "duration",
        "logging.handlers",
        True,
        "After SocketHandler's first failed connection, how long does it wait before it tries to connect again?",
        [r"\b(1(\.0)?|one)\s*(s\b|sec)"],
        "createSocket: 'The default parameters are such that the initial delay is one second' / 'retryStart (initial delay, defaulting to 1.0 seconds).'",
    ),
    (
        "users",
        "quantity",
        "logging.handlers",
        True,
        "I created a SysLogHandler with no arguments. Which port is it sending my logs to?",
        [r"\b514\b"],
        "SysLogHandler: 'If address is not specified, ('localhost', 514) is used.'",
    ),
    (
        "users",
        "default",
        "logging.handlers",
        True,
        "I set up a RotatingFileHandler with only a filename. When will it roll the file over?",
        [r"\bnever\b|grows indefinitely|indefinitely"],
        "RotatingFileHandler: 'By default, the file grows indefinitely. ... if either of maxBytes or backupCount is zero, rollover never occurs'",
    ),
    (
        "users",
        "duration",
        "logging.handlers",
        False,
        "How long does SMTPHandler wait for a slow mail server before it times out?",
        [r"\b(1(\.0)?|one)\s*(s\b|sec)|timeout\s*=\s*1\.0"],
        "Signature: 'SMTPHandler(mailhost, fromaddr, toaddrs, subject, credentials=None, secure=None, timeout=1.0)'; 'A timeout can be specified for communication with the SMTP server using the timeout argument.'",
    ),
    (
        "users",
        "default",
        "logging.handlers",
        False,
        "At what severity does a MemoryHandler flush its buffer early if I leave flushLevel alone?",
        [
            r"(?-i:\bERROR\b)|\berror\b\s*(\(|level|severity)|(level|severity)\s+(is\s+|of\s+|set\s+to\s+)?error\b"
        ],
        "Signature: 'MemoryHandler(capacity, flushLevel=ERROR, target=None, flushOnClose=True)'; 'Flushing occurs whenever the buffer is full, or when an event of a certain severity or greater is seen.'",
    ),
    (
        "users",
        "default",
        "logging.handlers",
        False,
        "If I don't pass when= to TimedRotatingFileHandler, how often does it rotate the log?",
        [r"\bhour|['\"`]h['\"`]"],
        "Signature: 'TimedRotatingFileHandler(filename, when='h', interval=1, ...)'; table: ''H'' = 'Hours'.",
    ),
    # --- argparse ------------------------------------------------------------------------------
    (
        "users",
        "quantity",
        "argparse",
        False,
        "When argparse rejects invalid command-line arguments, which exit code does my script end with?",
        [r"^\W*2\b|(status|code|exit\w*)\W+(\w+\W+){0,3}2\b"],
        "ArgumentParser.error: 'This method prints a usage message including the message to the standard error and terminates the program with a status code of 2.'",
    ),
    (
        "users",
        "name",
        "argparse",
        False,
        "Is there a built-in argparse action that gives me paired --color / --no-color flags?",
        [r"BooleanOptionalAction"],
        "'The BooleanOptionalAction is available in argparse and adds support for boolean actions such as --foo and --no-foo'",
    ),
    (
        "users",
        "name",
        "argparse",
        False,
        "argparse happily accepts --verb when my option is --verbose. Which setting turns that prefix matching off?",
        [r"allow_abbrev"],
        "'allow_abbrev - Allows long options to be abbreviated if the abbreviation is unambiguous. (default: True)'; 'This feature can be disabled by setting allow_abbrev to False'",
    ),
    (
        "manual",
        "version",
        "argparse",
        True,
        "In which Python version was the 'extend' action added to argparse?",
        [r"\b3\.8\b"],
        "''extend' - This stores a list, and extends each argument value to the list. ... .. versionadded:: 3.8'",
    ),
    # --- datetime ------------------------------------------------------------------------------
    (
        "users",
        "quantity",
        "datetime",
        True,
        "What's the latest year a Python date object can represent?",
        [r"\b9999\b"],
        "MAXYEAR: 'The largest year number allowed in a date or datetime object. MAXYEAR is 9999.'",
    ),
    (
        "users",
        "name",
        "datetime",
        False,
        "I want weekdays numbered Monday=1 through Sunday=7. Which date method gives me that?",
        [r"isoweekday"],
        "date.isoweekday(): 'Return the day of the week as an integer, where Monday is 1 and Sunday is 7.'",
    ),
    # --- re ------------------------------------------------------------------------------------
    (
        "users",
        "version",
        "re",
        True,
        "Since which Python version does the re module support possessive quantifiers like a*+?",
        [r"\b3\.11\b"],
        "'These are known as possessive quantifiers. ... .. versionadded:: 3.11'",
    ),
    (
        "users",
        "definition",
        "re",
        False,
        "What does the (?>...) construct do in a Python regex, and what is it called?",
        [r"atomic\s+group"],
        "'(?>...) Attempts to match ... as if it was a separate regular expression ... the expression, known as an atomic group, has thrown away all stack points within itself.'",
    ),
    (
        "manual",
        "name",
        "re",
        False,
        "Which re function returns a match object only if the whole string matches the regular expression pattern?",
        [r"fullmatch"],
        "fullmatch(): 'If the whole string matches the regular expression pattern, return a corresponding match object.'",
    ),
    # --- shutil --------------------------------------------------------------------------------
    (
        "users",
        "quantity",
        "shutil",
        False,
        "How big a buffer does shutil.copyfile use when copying on Windows?",
        [r"\b1\s?(MiB|MB|megabyte)|1024\s?KiB|1,?048,?576"],
        "'On Windows shutil.copyfile() uses a bigger default buffer size (1 MiB instead of 64 KiB)'",
    ),
    (
        "users",
        "name",
        "shutil",
        False,
        "shutil.copytree fails with FileExistsError because the target folder already exists. Which parameter lets it copy into an existing directory?",
        [r"dirs_exist_ok"],
        "'If dirs_exist_ok is false (the default) and dst already exists, a FileExistsError is raised. If dirs_exist_ok is true, the copying operation will continue...'",
    ),
    (
        "users",
        "default",
        "shutil",
        True,
        "When shutil.get_terminal_size can't work out the terminal, what size does it report?",
        [r"80\D{1,12}24"],
        "'... the value given in fallback parameter is used. fallback defaults to (80, 24) which is the default size used by many terminal emulators.'",
    ),
    (
        "manual",
        "definition",
        "shutil",
        False,
        "In which unit does shutil.disk_usage report the total, used and free space?",
        [r"\bbytes?\b"],
        "disk_usage(): '... with the attributes total, used and free, which are the amount of total, used and free space, in bytes.'",
    ),
    # --- pathlib -------------------------------------------------------------------------------
    (
        "users",
        "default",
        "pathlib",
        False,
        "What permission bits does Path.touch request when it creates a new file, before the umask is applied?",
        [r"0o?666|rw-rw-rw-|\b666\b"],
        "'Path.touch(mode=0o666, exist_ok=True) Create a file at this given path. If mode is given, it is combined with the process' umask value...'",
    ),
    # --- csv -----------------------------------------------------------------------------------
    (
        "users",
        "default",
        "csv",
        True,
        "What line ending does csv.writer put after each row unless I change the dialect?",
        [r"\\r\\n|CR\s?LF|carriage return"],
        "Dialect.lineterminator: 'The string used to terminate lines produced by the writer. It defaults to '\\r\\n'.'",
    ),
    (
        "users",
        "name",
        "csv",
        True,
        "csv.DictWriter got a dict containing a key that isn't in fieldnames. What does it raise by default?",
        [r"ValueError"],
        "DictWriter: 'If it is set to 'raise', the default value, a ValueError is raised.'",
    ),
    # --- time ----------------------------------------------------------------------------------
    (
        "users",
        "quantity",
        "time",
        True,
        "On Windows 8.1 or newer, what resolution does time.sleep() have?",
        [r"\b100\s*(ns\b|nano)"],
        "sleep(): 'On Windows 8.1 and newer the implementation uses a high-resolution timer which provides resolution of 100 nanoseconds.'",
    ),
    (
        "manual",
        "definition",
        "time",
        False,
        "What is the epoch, as defined by the time module?",
        [r"\b1970\b"],
        "'The epoch is the point where the time starts, the return value of time.gmtime(0). It is January 1, 1970, 00:00:00 (UTC) on all platforms.'",
    ),
    # --- random --------------------------------------------------------------------------------
    (
        "users",
        "quantity",
        "random",
        True,
        "What's the longest list for which random.shuffle could, in principle, produce every possible ordering?",
        [r"\b2,?080\b"],
        "shuffle(): '... most permutations of a long sequence can never be generated. For example, a sequence of length 2080 is the largest that can fit within the period of the Mersenne Twister random number generator.'",
    ),
    (
        "manual",
        "quantity",
        "random",
        True,
        "What is the period of the Mersenne Twister core generator used by the random module?",
        [r"19937"],
        "'Python uses the Mersenne Twister as the core generator. It produces 53-bit precision floats and has a period of 2**19937-1.'",
    ),
    # --- functools -----------------------------------------------------------------------------
    (
        "users",
        "default",
        "functools",
        False,
        "How many results does @functools.lru_cache remember when I use it bare, without arguments?",
        [r"\b128\b"],
        "lru_cache: 'This allows the lru_cache decorator to be applied directly to a user function, leaving the maxsize at its default value of 128'",
    ),
    # --- itertools -----------------------------------------------------------------------------
    (
        "users",
        "version",
        "itertools",
        True,
        "Since which Python version does itertools have a built-in for overlapping pairs like AB, BC, CD?",
        [r"\b3\.10\b"],
        "pairwise(): 'Return successive overlapping pairs taken from the input iterable. ... .. versionadded:: 3.10'",
    ),
    (
        "users",
        "yesno",
        "itertools",
        False,
        "Can two threads safely consume the iterators returned by one itertools.tee call at the same time?",
        [NO + r"|not\s+thread-?\s?safe|RuntimeError"],
        "tee(): 'tee iterators are not threadsafe. A RuntimeError may be raised when using simultaneously iterators returned by the same tee() call'",
    ),
    (
        "users",
        "definition",
        "itertools",
        True,
        "Why does itertools.groupby hand me the same key in several separate groups?",
        [r"\bsort"],
        "groupby(): 'Generally, the iterable needs to already be sorted on the same key function.' / 'It generates a break or new group every time the value of the key function changes'",
    ),
    # --- collections ---------------------------------------------------------------------------
    (
        "users",
        "definition",
        "collections",
        True,
        "What happens when I append to a deque that already holds maxlen items?",
        [
            r"discard|(dropped|removed|evicted|popped|pushed\s+out)[\s\S]{0,30}(opposite|other)\s+end|opposite\s+end"
        ],
        "deque: 'Otherwise, the deque is bounded to the specified maximum length. Once a bounded length deque is full, when new items are added, a corresponding number of items are discarded from the opposite end.'",
    ),
    # --- tempfile ------------------------------------------------------------------------------
    (
        "users",
        "definition",
        "tempfile",
        False,
        "Who is allowed to read and write the file that tempfile.mkstemp creates?",
        [
            r"only\s+(by\s+)?the\s+creat\w*\s+user|creating\s+user|only\s+(by\s+)?the\s+user\s+(who|that)\s+created|only\s+(the\s+)?(owner|current\s+user)"
        ],
        "mkstemp(): 'The file is readable and writable only by the creating user ID.'",
    ),
    (
        "users",
        "name",
        "tempfile",
        False,
        "TemporaryDirectory cleanup crashes on Windows when a file inside is still open. Which parameter makes it ignore those errors?",
        [r"ignore_cleanup_errors"],
        "TemporaryDirectory: 'If ignore_cleanup_errors is true, any unhandled exceptions during explicit or implicit cleanup ... will be ignored'",
    ),
    # --- zipfile -------------------------------------------------------------------------------
    (
        "users",
        "yesno",
        "zipfile",
        False,
        "Can Python's zipfile module create password-protected (encrypted) archives?",
        [
            NO
            + r"|cannot\s+create\s+an\s+encrypted|can\s*(no|')t\s+create|not\s+(able|possible)\s+to\s+create|only\s+(supports\s+)?decrypt"
        ],
        "'It supports decryption of encrypted files in ZIP archives, but it currently cannot create an encrypted file.'",
    ),
    (
        "users",
        "quantity",
        "zipfile",
        False,
        "Above what archive size does zipfile need the ZIP64 extensions?",
        [r"\b4\s?(GiB|GB|gigabytes?)"],
        "'It can handle ZIP files that use the ZIP64 extensions (that is ZIP files that are more than 4 GiB in size).'",
    ),
    (
        "users",
        "name",
        "zipfile",
        False,
        "I'm streaming data into a zip member with ZipFile.open(mode='w') and it might grow past 2 GiB. What should I pass?",
        [r"force_zip64"],
        "ZipFile.open: 'When writing a file, if the file size is not known in advance but may exceed 2 GiB, pass force_zip64=True to ensure that the header format is capable of supporting large files.'",
    ),
    # --- gzip ----------------------------------------------------------------------------------
    (
        "users",
        "default",
        "gzip",
        True,
        "What compression level does gzip.open use if I don't give one?",
        [r"\b(9|nine)\b"],
        "GzipFile: 'The compresslevel argument is an integer from 0 to 9 ... 0 is no compression. The default is 9.' (gzip.open(..., compresslevel=9, ...))",
    ),
    (
        "users",
        "default",
        "gzip",
        True,
        "Which compression level does the python -m gzip command-line tool use by default?",
        [r"\b(6|six)\b"],
        "CLI: '.. versionchanged:: 3.8 Add a new command line interface with a usage. By default, when you will execute the CLI, the default compression level is 6.'",
    ),
    # --- hashlib -------------------------------------------------------------------------------
    (
        "users",
        "name",
        "hashlib",
        False,
        "On a FIPS-restricted system, how do I tell hashlib that I'm only using md5 for a non-security checksum?",
        [r"usedforsecurity"],
        "'All hashlib constructors take a keyword-only argument usedforsecurity with default value True. A false value allows the use of insecure and blocked hashing algorithms in restricted environments.'",
    ),
    # --- socket --------------------------------------------------------------------------------
    (
        "users",
        "default",
        "socket",
        True,
        "Out of the box, how long will a freshly created socket wait on recv() before timing out?",
        [
            r"\bNone\b(?!\s+of)|no\s+timeout|blocking\s+mode|block\w*\s+(indefinitely|forever)|never\s+times?\s+out"
        ],
        "getdefaulttimeout/setdefaulttimeout: 'A value of None indicates that new socket objects have no timeout. When the socket module is first imported, the default is None.'",
    ),
    (
        "manual",
        "definition",
        "socket",
        False,
        "What does the backlog argument of socket.listen specify?",
        [r"unaccepted\s+connections|(pending|queued|waiting|not\s+yet\s+accepted)\s+connections"],
        "listen(): 'it specifies the number of unaccepted connections that the system will allow before refusing new connections.'",
    ),
    # --- threading -----------------------------------------------------------------------------
    (
        "users",
        "quantity",
        "threading",
        True,
        "What's the smallest stack size threading.stack_size() will accept?",
        [r"32,?768|32\s?(KiB|KB|kilobytes?)"],
        "stack_size(): '... must be 0 (use platform or configured default) or a positive integer value of at least 32,768 (32 KiB).' / '32 KiB is currently the minimum supported stack size value'",
    ),
    (
        "users",
        "name",
        "threading",
        False,
        "What exception do I get if I pass an enormous timeout to Lock.acquire()?",
        [r"OverflowError"],
        "TIMEOUT_MAX: 'The maximum value allowed for the timeout parameter of blocking functions ... Specifying a timeout greater than this value will raise an OverflowError.'",
    ),
    (
        "manual",
        "name",
        "threading",
        False,
        "Which exception does threading.excepthook silently ignore by default?",
        [r"SystemExit"],
        "'By default, threading.excepthook() ignores silently SystemExit.'",
    ),
    # --- multiprocessing -----------------------------------------------------------------------
    (
        "users",
        "version",
        "multiprocessing",
        True,
        "Since which Python version does multiprocessing default to spawn rather than fork on macOS?",
        [r"\b3\.8\b"],
        "'.. versionchanged:: 3.8 On macOS, the spawn start method is now the default.'",
    ),
    (
        "users",
        "default",
        "multiprocessing",
        False,
        "How many worker processes does multiprocessing.Pool() start if I don't pass processes?",
        [r"cpu_count|number\s+of\s+(CPUs|cores|processors)"],
        "Pool: 'processes is the number of worker processes to use. If processes is None then the number returned by os.cpu_count() is used.'",
    ),
    (
        "users",
        "duration",
        "multiprocessing",
        False,
        "When a multiprocessing BaseManager shuts down, how long does it wait for the manager process before terminating it?",
        [r"\b(1(\.0)?|one)\s*(s\b|sec)|shutdown_timeout\s*=\s*1\.0"],
        "Signature 'BaseManager(address=None, authkey=None, serializer='pickle', ctx=None, *, shutdown_timeout=1.0)'; 'shutdown_timeout is a timeout in seconds used to wait until the process used by the manager completes in the shutdown() method. If the shutdown times out, the process is terminated.'",
    ),
    # --- asyncio-task --------------------------------------------------------------------------
    (
        "users",
        "definition",
        "asyncio-task",
        True,
        "My fire-and-forget asyncio task sometimes disappears before it finishes. Why?",
        [r"weak\s?-?ref|garbage[- ]collect"],
        "create_task: 'Save a reference to the result of this function, to avoid a task disappearing mid-execution. The event loop only keeps weak references to tasks. A task that isn't referenced elsewhere may get garbage collected at any time'",
    ),
    (
        "users",
        "yesno",
        "asyncio-task",
        True,
        "Does asyncio.wait raise TimeoutError when its timeout runs out?",
        [NO + r"|does\s+not\s+raise|(doesn'?t|won'?t|will\s+not)\s+raise|second\s+set"],
        "wait(): 'Note that this function does not raise TimeoutError. Futures or Tasks that aren't done when the timeout occurs are simply returned in the second set.'",
    ),
    (
        "users",
        "version",
        "asyncio-task",
        True,
        "Since which Python version can I write 'async with asyncio.timeout(10):'?",
        [r"\b3\.11\b"],
        "timeout(): '... Timeout context managers can be safely nested. .. versionadded:: 3.11'",
    ),
    (
        "users",
        "name",
        "asyncio-task",
        False,
        "What's the asyncio helper for running a blocking function in a separate thread without stalling the event loop?",
        [r"to_thread"],
        "to_thread(): 'Asynchronously run function func in a separate thread. ... primarily intended to be used for executing IO-bound functions/methods that would otherwise block the event loop'",
    ),
    (
        "manual",
        "default",
        "asyncio-task",
        False,
        "What is the default return_when value of asyncio.wait?",
        [r"ALL_COMPLETED"],
        "Signature 'wait(aws, *, timeout=None, return_when=ALL_COMPLETED)'; 'ALL_COMPLETED: The function will return when all futures finish or are cancelled.'",
    ),
    # --- http.server ---------------------------------------------------------------------------
    (
        "users",
        "default",
        "http.server",
        True,
        "Which port does python -m http.server listen on if I don't give one?",
        [r"\b8000\b"],
        "'python -m http.server ... The server listens to port 8000 by default.'",
    ),
    (
        "users",
        "version",
        "http.server",
        True,
        "Since which Python version can I point python -m http.server at another folder with a flag instead of cd-ing into it?",
        [r"\b3\.7\b"],
        "'The option -d/--directory specifies a directory to which it should serve the files. ... .. versionadded:: 3.7 --directory argument was introduced.'",
    ),
    (
        "users",
        "definition",
        "http.server",
        False,
        "When a request maps to a directory, which file does SimpleHTTPRequestHandler look for first?",
        [r"index\.html"],
        "do_GET(): 'If the request was mapped to a directory, the directory is checked for a file named index.html or index.htm (in that order).'",
    ),
    # --- urllib.request ------------------------------------------------------------------------
    (
        "users",
        "name",
        "urllib.request",
        False,
        "Which environment variable lists hosts that urllib should contact directly, bypassing the proxy?",
        [r"no_proxy"],
        "ProxyHandler: 'The no_proxy environment variable can be used to specify hosts which shouldn't be reached via proxy'",
    ),
    (
        "users",
        "definition",
        "urllib.request",
        True,
        "Why is urllib ignoring my uppercase HTTP_PROXY variable inside a CGI script?",
        [r"REQUEST_METHOD|lower\s?-?case|injected"],
        "getproxies note: 'If the environment variable REQUEST_METHOD is set, which usually indicates your script is running in a CGI environment, the environment variable HTTP_PROXY (uppercase _PROXY) will be ignored. This is because that variable can be injected by a client using the \"Proxy:\" HTTP header.'",
    ),
    (
        "users",
        "yesno",
        "urllib.request",
        False,
        "Does urllib.request keep HTTP connections alive between requests?",
        [NO + r"|Connection:\s?close"],
        "urlopen(): 'urllib.request module uses HTTP/1.1 and includes Connection:close header in its HTTP requests.'",
    ),
    # --- unittest ------------------------------------------------------------------------------
    (
        "users",
        "quantity",
        "unittest",
        False,
        "My assertEqual failure diff got cut off. How long can the diff be by default?",
        [r"80\s?\*\s?8|\b640\b"],
        "TestCase.maxDiff: 'This attribute controls the maximum length of diffs output by assert methods that report diffs on failure. It defaults to 80*8 characters.'",
    ),
    (
        "users",
        "name",
        "unittest",
        False,
        "How do I hide print output from passing tests but still see it when a test fails, when running unittest from the command line?",
        [r"--buffer|(^|\s)-b\b|\bbuffer"],
        "'-b, --buffer: The standard output and standard error streams are buffered during the test run. Output during a passing test is discarded. Output is echoed normally on test fail or error'",
    ),
    # --- timeit --------------------------------------------------------------------------------
    (
        "users",
        "default",
        "timeit",
        False,
        "How many times does timeit.timeit run my statement if I don't pass number?",
        [r"1,?000,?000|one\s+million|a\s+million|10\s?\*\*\s?6|\b1e6\b"],
        "Timer.timeit: 'The argument is the number of times through the loop, defaulting to one million.'",
    ),
    (
        "users",
        "duration",
        "timeit",
        True,
        "When I run python -m timeit without -n, how long does it aim for the total loop time to be?",
        [r"0\.2\s*(s\b|sec)|\b200\s*(ms\b|milli)"],
        "'If -n is not given, a suitable number of loops is calculated by trying increasing numbers from the sequence 1, 2, 5, 10, 20, 50, ... until the total time is at least 0.2 seconds.'",
    ),
    (
        "users",
        "yesno",
        "timeit",
        True,
        "Is the garbage collector running while timeit measures my code?",
        [NO + r"|turns\s+off|disabled?|switched\s+off"],
        "Timer.timeit note: 'By default, timeit() temporarily turns off garbage collection during the timing.'",
    ),
    (
        "manual",
        "version",
        "timeit",
        True,
        "In which Python version did the default value of repeat in timeit.repeat change from 3 to 5?",
        [r"\b3\.7\b"],
        "'.. versionchanged:: 3.7 Default value of repeat changed from 3 to 5.'",
    ),
    # --- pickle --------------------------------------------------------------------------------
    (
        "users",
        "default",
        "pickle",
        True,
        "Which pickle protocol does Python 3.11 write when I don't specify one?",
        [r"\b(4|four)\b"],
        "DEFAULT_PROTOCOL: 'An integer, the default protocol version used for pickling. May be less than HIGHEST_PROTOCOL. Currently the default protocol is 4'",
    ),
    # --- configparser --------------------------------------------------------------------------
    (
        "users",
        "name",
        "configparser",
        False,
        "configparser lowercases all my option names, also when writing the file back. What do I override to keep their case?",
        [r"optionxform"],
        "optionxform(): 'This method transforms option names on every read, get, or set operation. The default converts the name to lowercase.'",
    ),
    (
        "manual",
        "default",
        "configparser",
        False,
        "What is the default value of the interpolation argument of ConfigParser?",
        [r"BasicInterpolation"],
        "'interpolation, default value: configparser.BasicInterpolation'",
    ),
    # --- string / textwrap ---------------------------------------------------------------------
    (
        "users",
        "name",
        "string",
        False,
        "string.Template.substitute raises KeyError when a key is missing. Which method leaves unknown placeholders untouched instead?",
        [r"safe_substitute"],
        "safe_substitute(): 'Like substitute(), except that if placeholders are missing from mapping and kwds, instead of raising a KeyError exception, the original placeholder will appear in the resulting string intact.'",
    ),
    # --- decimal -------------------------------------------------------------------------------
    (
        "users",
        "default",
        "decimal",
        False,
        "Which rounding mode does the decimal module use out of the box, i.e. what happens to ties?",
        [r"HALF_EVEN|half[- ]even|banker|nearest\s+even"],
        "DefaultContext: 'The default values are prec=28, rounding=ROUND_HALF_EVEN'; ROUND_HALF_EVEN: 'Round to nearest with ties going to nearest even integer.'",
    ),
    (
        "manual",
        "default",
        "decimal",
        True,
        "Which traps are enabled in decimal's DefaultContext?",
        [r"^(?=[\s\S]*overflow)(?=[\s\S]*invalid\s?operation)(?=[\s\S]*division\s?(by\s?)?zero)"],
        "DefaultContext: 'The default values are prec=28, rounding=ROUND_HALF_EVEN, and enabled traps for Overflow, InvalidOperation, and DivisionByZero.'",
    ),
    # --- heapq / bisect ------------------------------------------------------------------------
    (
        "users",
        "definition",
        "heapq",
        False,
        "Is heapq a min-heap or a max-heap?",
        [r"min[- ]?heap|smallest"],
        "'(b) Our pop method returns the smallest item, not the largest (called a \"min heap\" in textbooks...)'",
    ),
    (
        "users",
        "version",
        "bisect",
        True,
        "Since which Python version do the bisect functions accept a key function?",
        [r"\b3\.10\b"],
        "bisect_left: '.. versionchanged:: 3.10 Added the key parameter.'",
    ),
    # --- secrets / uuid ------------------------------------------------------------------------
    (
        "users",
        "quantity",
        "secrets",
        True,
        "How many bytes of randomness should a security token have to resist brute force?",
        [r"32\s?bytes|256\s?bits"],
        "'As of 2015, it is believed that 32 bytes (256 bits) of randomness is sufficient for the typical use-case expected for the secrets module.'",
    ),
    (
        "manual",
        "version",
        "secrets",
        False,
        "In which Python version was the secrets module added?",
        [r"\b3\.6\b"],
        "secrets module header: '.. versionadded:: 3.6'",
    ),
    (
        "users",
        "definition",
        "uuid",
        True,
        "Why can uuid1() be a privacy concern?",
        [r"network\s+address|\bMAC\b|hardware\s+address"],
        "'Note that uuid1() may compromise privacy since it creates a UUID containing the computer's network address.'",
    ),
    (
        "manual",
        "name",
        "uuid",
        False,
        "Which function generates a UUID based on the MD5 hash of a namespace identifier and a name?",
        [r"uuid3"],
        "uuid3(namespace, name): 'Generate a UUID based on the MD5 hash of a namespace identifier (which is a UUID) and a name (which is a string).'",
    ),
    # --- os.path / glob ------------------------------------------------------------------------
    (
        "users",
        "name",
        "os.path",
        True,
        "os.path.commonprefix gave me '/usr/l' for '/usr/lib' and '/usr/local/lib'. What should I use to get a real common directory?",
        [r"commonpath"],
        "commonprefix() note: 'This function may return invalid paths because it works a character at a time. To obtain a valid path, see commonpath().'",
    ),
    (
        "users",
        "yesno",
        "glob",
        True,
        "Will glob.glob('*') return my dotfiles such as .env?",
        [NO + r"|start(s|ing)?\s+with\s+a\s+dot|hidden"],
        "'Note that files beginning with a dot (.) can only be matched by patterns that also start with a dot, unlike fnmatch.fnmatch() or pathlib.Path.glob().'",
    ),
]

# (kind, missing, question, note)
UNANSWERABLE = [
    # nonexistent: the identifier appears nowhere in the Python 3.11 docs
    (
        "nonexistent",
        "max_nesting_depth",
        "What is the default value of json.dumps's max_nesting_depth argument?",
        "json.dumps has no nesting-depth limit parameter.",
    ),
    (
        "nonexistent",
        "set_pool_size",
        "How do I set the pool size of sqlite3 connections with sqlite3.set_pool_size?",
        "sqlite3 has no connection pool.",
    ),
    (
        "nonexistent",
        "max_retries",
        "How many times does subprocess.run retry a failing command by default (the max_retries option)?",
        "subprocess.run has no retry option.",
    ),
    (
        "nonexistent",
        "PYTHONLOGLEVEL",
        "Which root logger level does the PYTHONLOGLEVEL environment variable select when it is set to 1?",
        "No such environment variable exists.",
    ),
    (
        "nonexistent",
        "retry_delay",
        "How long does shutil.copytree wait between attempts when I set its retry_delay parameter?",
        "copytree has no retry parameter.",
    ),
    (
        "nonexistent",
        "sha256_file",
        "Does hashlib.sha256_file read the file in chunks, and how big are they?",
        "The real API is hashlib.file_digest; sha256_file does not exist.",
    ),
    (
        "nonexistent",
        "parallel_compress",
        "How many threads does gzip.parallel_compress use by default?",
        "gzip has no parallel compression function.",
    ),
    (
        "nonexistent",
        "skip_blank_rows",
        "What is the default of csv.reader's skip_blank_rows option?",
        "csv.reader has no such option.",
    ),
    (
        "nonexistent",
        "max_concurrency",
        "What's the default max_concurrency of an asyncio.TaskGroup?",
        "TaskGroup takes no concurrency limit.",
    ),
    (
        "nonexistent",
        "weighted_shuffle",
        "How do I shuffle a list with per-item weights using random.weighted_shuffle?",
        "random has choices() with weights but no weighted_shuffle.",
    ),
    # other-product: another language's or product's feature asked as if it were Python's
    (
        "other-product",
        "watchFile",
        "What's the default polling interval when I use watchFile to get notified that a log file changed?",
        "fs.watchFile is Node.js.",
    ),
    (
        "other-product",
        "StringBuilder",
        "What's the default initial capacity of a StringBuilder when I build a long string in a loop?",
        "StringBuilder is Java/.NET.",
    ),
    (
        "other-product",
        "work_mem",
        "How much memory can a sort in a sqlite3 query use before spilling to disk, i.e. what's the default work_mem?",
        "work_mem is a PostgreSQL setting.",
    ),
    (
        "other-product",
        "WithTimeout",
        "How do I wrap an asyncio coroutine with context.WithTimeout so it is cancelled after five seconds?",
        "context.WithTimeout is Go.",
    ),
    (
        "other-product",
        "log4j",
        "Where do I put a log4j.properties file so that Python's logging picks up my root logger configuration?",
        "log4j is a Java logging library.",
    ),
    (
        "other-product",
        "keepAliveTime",
        "What's the default keepAliveTime for idle worker processes in a multiprocessing Pool?",
        "keepAliveTime is a Java ThreadPoolExecutor parameter.",
    ),
    (
        "other-product",
        "JSON.stringify",
        "When I pretty-print with JSON.stringify, what does the space argument default to?",
        "JSON.stringify is JavaScript.",
    ),
    # unindexed-page: the fact is in the Python docs, but only on pages not listed in pages.txt
    (
        "unindexed-page",
        "SMTP_SSL",
        "Which port does smtplib.SMTP_SSL connect to when I pass port=0?",
        "Answer (465) is in library/smtplib.rst.txt, which is not indexed.",
    ),
    (
        "unindexed-page",
        "limit_denominator",
        "What is the default max_denominator of Fraction.limit_denominator?",
        "Answer (1000000) is in library/fractions.rst.txt, which is not indexed.",
    ),
    (
        "unindexed-page",
        "get_close_matches",
        "What similarity cutoff does difflib.get_close_matches use by default?",
        "Answer (0.6) is in library/difflib.rst.txt, which is not indexed.",
    ),
    (
        "unindexed-page",
        "writeback",
        "Does shelve.open cache every accessed entry in memory by default, i.e. what is writeback set to?",
        "Answer (False) is in library/shelve.rst.txt, which is not indexed.",
    ),
    (
        "unindexed-page",
        "Z_DEFAULT_COMPRESSION",
        "Which compression level does zlib's Z_DEFAULT_COMPRESSION currently correspond to?",
        "Answer (6) is in library/zlib.rst.txt, which is not indexed (gzip's CLI default of 6 is a different fact).",
    ),
    (
        "unindexed-page",
        "getuser",
        "Which environment variables does getpass.getuser() check to find the login name, and in what order?",
        "Answer (LOGNAME, USER, LNAME, USERNAME) is in library/getpass.rst.txt, which is not indexed.",
    ),
    (
        "unindexed-page",
        "ip_network",
        "Is strict mode on by default for ipaddress.ip_network, so that host bits must be zero?",
        "Answer (strict=True) is in library/ipaddress.rst.txt, which is not indexed.",
    ),
    # off-topic
    (
        "off-topic",
        "sourdough",
        "How long should I let a sourdough starter ferment before baking with it?",
        "Cooking.",
    ),
    ("off-topic", "offside", "When is a football player in an offside position?", "Sports."),
    (
        "off-topic",
        "photosynthesis",
        "Which pigment absorbs light during photosynthesis?",
        "Biology.",
    ),
    ("off-topic", "marathon", "How long is an official marathon in kilometres?", "Sports."),
    ("off-topic", "tiramisu", "Which cheese goes into a classic tiramisu?", "Cooking."),
    ("off-topic", "Wimbledon", "On what surface is Wimbledon played?", "Sports."),
]


def build() -> list[dict]:
    rows = []
    for style, typ, page, adjacent, question, answer, note in ANSWERABLE:
        rows.append(
            {
                "question": question,
                "answerable": True,
                "style": style,
                "type": typ,
                "adjacent": adjacent,
                "pages": [L + page + ".rst.txt"],
                "answer": answer,
                "note": note,
            }
        )
    for kind, missing, question, note in UNANSWERABLE:
        rows.append(
            {
                "question": question,
                "answerable": False,
                "style": "users",
                "pages": [],
                "answer": [],
                "missing": missing,
                "kind": kind,
                "note": note,
            }
        )
    random.Random(3111).shuffle(
        rows
    )  # interleave pages and answerable/unanswerable for --limit runs
    return [{"id": f"py-{i:03d}", **row} for i, row in enumerate(rows, 1)]


if __name__ == "__main__":
    out = HERE / "questions.jsonl"
    rows = build()
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} questions to {out}")
