"""Generate tests/data/privacy/corpus.jsonl (deterministic: fixed seed, fixed lists).

Usage: python tests/data/privacy/make_corpus.py > tests/data/privacy/corpus.jsonl
(heldout.py / heldout_b.py beside it: hand-written snippets measured once as a held-out set, then added.)
All values are synthetic: reserved domains (example.com/.org/.net), fictional phone ranges,
documented test IBANs/cards or values generated with valid checksums, TEST-NET IPs / 2001:db8::/32.
"""
import json
import os
import random
import string
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
R = random.Random(int(os.environ.get("SEED", "20261121")))
rows = []


def add(text, kinds, tag):
    rows.append({"id": f"{tag}-{len([r for r in rows if r['id'].startswith(tag + '-')]) + 1:03d}",
                 "text": text, "pii": bool(kinds), "kinds": sorted(set(kinds))})


# ---- value makers -------------------------------------------------------------------------
def iban(cc, bban):
    num = "".join(str(int(c, 36)) for c in bban + cc + "00")
    return f"{cc}{98 - int(num) % 97:02d}{bban}"


def spaced(s):
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def rdig(n):
    return "".join(R.choice(string.digits) for _ in range(n))


def rtok(n, alphabet=string.ascii_letters + string.digits):
    return "".join(R.choice(alphabet) for _ in range(n))


def luhn_ok(d):
    t = 0
    for i, ch in enumerate(reversed(d)):
        x = int(ch)
        if i % 2:
            x = x * 2 - 9 if x > 4 else x * 2
        t += x
    return t % 10 == 0


def ssn():
    while True:
        a = R.randint(1, 899)
        if a != 666:
            return f"{a:03d}-{R.randint(1, 99):02d}-{R.randint(1, 9999):04d}"


def nino():
    first, second = "ABCEGHJKLMNOPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"
    while True:
        p = R.choice(first) + R.choice(second)
        if p not in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
            return f"{p} {rdig(2)} {rdig(2)} {rdig(2)} {R.choice('ABCD')}"


def dni():
    n = R.randint(10_000_000, 99_999_999)
    return f"{n}{'TRWAGMYFPDXBNJZSQVHLCKE'[n % 23]}"


def nie():
    p = R.choice("XYZ")
    n = rdig(7)
    return f"{p}{n}{'TRWAGMYFPDXBNJZSQVHLCKE'[int(str('XYZ'.index(p)) + n) % 23]}"


def bsn():
    while True:
        d = str(R.randint(1, 9)) + rdig(8)
        if (sum(int(x) * w for x, w in zip(d[:8], range(9, 1, -1))) - int(d[8])) % 11 == 0:
            return d


def steuer_id():
    d = str(R.randint(1, 9)) + rdig(9)
    product = 10
    for x in d:
        s = (int(x) + product) % 10 or 10
        product = (s * 2) % 11
    return d + str((11 - product) % 10)


def nir():
    body = f"{R.choice('12')}{rdig(2)}{R.randint(1, 12):02d}{R.randint(1, 95):02d}{rdig(3)}{rdig(3)}"
    key = 97 - int(body) % 97
    return f"{body[0]} {body[1:3]} {body[3:5]} {body[5:7]} {body[7:10]} {body[10:13]} {key:02d}"


FIRST = ["Jane", "Omar", "Lena", "Kenji", "Priya", "Lucas", "Amara", "Tomasz", "Sofia", "Mateo",
         "Ingrid", "Yusuf", "Chloe", "Felix", "Noor", "Hana", "Diego", "Astrid", "Ravi", "Elena"]
LAST = ["Doe", "Haddad", "Vogel", "Sato", "Raman", "Moreau", "Okafor", "Nowak", "Rossi", "Garcia",
        "Lund", "Demir", "Martin", "Weber", "Khan", "Kim", "Silva", "Berg", "Iyer", "Popescu"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "crm.example.org"]


def person():
    return R.choice(FIRST), R.choice(LAST)


def email():
    f, last = person()
    local = R.choice([f"{f}.{last}", f"{f[0]}{last}", f"{f}_{last}{R.randint(1, 99)}", f"{f}+orders"]).lower()
    return f"{local}@{R.choice(DOMAINS)}"


def phone():
    return R.choice([
        f"(212) 555-01{rdig(2)}", f"+1 415 555 01{rdig(2)}", f"+1-312-555-01{rdig(2)}",
        f"020 7946 0{rdig(3)}", f"+44 20 7946 0{rdig(3)}", f"07700 900{rdig(3)}",
        f"+44 7700 900{rdig(3)}", f"01 99 00 {rdig(2)} {rdig(2)}", f"+33 6 39 98 {rdig(2)} {rdig(2)}",
        f"+49 30 5550 1{rdig(3)}", f"030 5550 1{rdig(3)}", f"646.555.01{rdig(2)}",
    ])


CARDS = ["4111 1111 1111 1111", "4242424242424242", "5555 5555 5555 4444", "5105-1051-0510-5100",
         "3782 822463 10005", "371449635398431", "6011 1111 1111 1117", "3530 1113 3330 0000",
         "3056 930902 5904", "2223 0031 2200 3222", "4000 0566 5566 5556", "4012888888881881",
         "6200 0000 0000 0005", "5200 8282 8282 8210", "6011 0009 9013 9424", "3566 0020 2036 0505",
         "3622 720627 1667", "6555 9000 0060 4105"]
for c in CARDS:
    assert luhn_ok(c.replace(" ", "").replace("-", "")), c

IBANS = ["DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32", "FR14 2004 1010 0505 0001 3M02 606",
         "NL91ABNA0417164300", "ES91 2100 0418 4502 0005 1332", "CH93 0076 2011 6238 5295 7",
         "BE68 5390 0754 7034", "IT60 X054 2811 1010 0000 0123 456", "AT61 1904 3002 3457 3201",
         spaced(iban("PL", rdig(24))), iban("SE", rdig(20)), spaced(iban("DK", rdig(14))),
         spaced(iban("NO", rdig(11))), spaced(iban("PT", rdig(21))), iban("IE", "AIBK" + rdig(14)),
         spaced(iban("FI", rdig(14))), spaced(iban("LU", rdig(16)))]

STREETS = ["221B Baker Street", "742 Evergreen Terrace", "1600 Example Avenue", "42 Willow Lane",
           "18 Harbour Road", "9 Quarry Close", "350 Fifth Ave", "77 Sunset Blvd", "12 Orchard Drive",
           "5 Chapel Row", "1207 N Maple St", "88 King's Road", "Hauptstraße 12", "Lindenallee 4a",
           "Berliner Straße 101", "Keizersgracht 123", "12 rue de la Paix", "8 avenue des Champs",
           "Calle Mayor 5", "Via Roma 10", "Am Mühlenweg 3", "14 Cedar Court"]

IPV = ["192.0.2.44", "198.51.100.23", "203.0.113.9", "203.0.113.250", "10.12.0.7", "192.168.1.20",
       "172.16.4.2", "2001:db8::17", "2001:db8:85a3::8a2e:370:7334", "198.51.100.0/24", "fd00::42"]


def secret():
    return R.choice([
        "sk-proj-" + rtok(40), "sk-" + rtok(48), "ghp_" + rtok(36), "github_pat_11" + rtok(80, string.ascii_letters + string.digits + "_"),
        "AKIA" + rtok(16, string.ascii_uppercase + string.digits), "xoxb-" + rdig(12) + "-" + rdig(12) + "-" + rtok(24),
        "AIza" + rtok(35), "glpat-" + rtok(20), "hf_" + rtok(34), "sk_live_" + rtok(24),
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." + rtok(43, string.ascii_letters + string.digits + "_-"),
    ])


def pem(kind="RSA PRIVATE KEY"):
    body = "\n".join(rtok(64, string.ascii_letters + string.digits + "+/") for _ in range(R.randint(2, 5)))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


# ---- positives: one kind each --------------------------------------------------------------
EMAIL_T = [
    "Hi team, please forward the signed contract to {v} before Friday.",
    "From: {v}\nSubject: Re: refund for order 18842\n\nStill waiting on my refund.",
    "CRM note: customer prefers contact via {v}, do not call.",
    "2026-03-02T10:14:07Z INFO login ok user={v} ip=local",
    '{{"to": "{v}", "subject": "Your invoice", "body": "See attached."}}',
    "Bitte schicken Sie die Unterlagen an {v}.",
    "Merci de répondre à {v} avant lundi.",
    "git config user.email \"{v}\"",
    "Reply-To: <{v}>",
    "Summarise this thread. Last message was from {v}: 'can we move the call?'",
    "ALERT: password reset requested for account {v}",
    "Contacts: sales -> {v}, support -> {v2}",
    "mailto:{v}?subject=Hello",
    "Escalate to {v} if the SLA is breached.",
    "author = \"{n} <{v}>\"",
    "El cliente escribió desde {v} pidiendo una factura.",
    "[ticket 4411] requester: {v}",
    "Can you draft a polite reply to {v} declining the offer?",
]
for t in EMAIL_T:
    f, last = person()
    add(t.format(v=email(), v2=email(), n=f"{f} {last}"), ["email"], "email")

PHONE_T = [
    "Call me back on {v} after 5pm.", "Phone: {v}", "Customer asked for a callback at {v} regarding the late delivery.",
    "Tel. {v} (Mo-Fr 9-17 Uhr)", "Please text {v} when the courier arrives.", "Mobile: {v}\nOffice hours only.",
    "Rufen Sie mich unter {v} an.", "Mon numéro de portable : {v}", "WhatsApp {v} for urgent issues",
    '{{"name": "delivery", "phone": "{v}"}}', "CRM: spoke with the buyer, cell {v}, wants a quote.",
    "Fax {v}", "If nobody answers, ring the front desk at {v}.", "contact number {v} (ask for Sam)",
    "Emergency contact: {v}", "caller_id={v} duration=312s status=completed", "Leave a voicemail at {v}.",
    "My number is {v}, thanks!",
]
for t in PHONE_T:
    add(t.format(v=phone()), ["phone"], "phone")

IBAN_T = [
    "Please wire the deposit to IBAN {v}.", "Bankverbindung: {v}, BIC COBADEFFXXX", "IBAN: {v}",
    "Refund goes to {v} (account holder: the customer).", '{{"iban": "{v}", "amount": 120.5, "currency": "EUR"}}',
    "Veuillez virer le solde sur {v}.", "payout_account={v}", "Transfer 400 EUR to {v} with reference INV-2291.",
    "Update supplier bank details to {v} as of next month.", "Cuenta: {v}", "my iban is {v}",
    "Rekeningnummer {v} graag gebruiken.", "SEPA mandate for {v} signed.", "Beneficiary IBAN {v}",
    "New bank account: {v}.", "Please check whether {v} is a valid account.", "Zahlung an {v} bis 30.04.",
]
for i, t in enumerate(IBAN_T):
    add(t.format(v=IBANS[i % len(IBANS)]), ["iban"], "iban")

CARD_T = [
    "Charge my card {v}, expiry 09/29, CVC on request.", "Card number: {v}", "Customer paid with {v} but the charge failed.",
    '{{"card": "{v}", "exp": "12/28"}}', "Zahlung mit Karte {v} abgelehnt.", "payment method: VISA {v}",
    "Please refund the purchase made with {v}.", "pan={v} status=declined", "Use {v} for the hotel booking.",
    "Ma carte bancaire : {v}", "The AmEx on file is {v}.", "Retry authorisation on {v} tomorrow.",
    "card={v}&amount=19.99", "My credit card is {v}", "Tarjeta {v}, caduca en 2028.",
    "Billing update: new card ending in full {v}", "Pay with {v} please", "cc: {v}",
]
for i, t in enumerate(CARD_T):
    add(t.format(v=CARDS[i % len(CARDS)]), ["payment_card"], "card")

NID_T = [
    ("Applicant SSN: {v}", ssn), ("Employee record — SSN {v}, start date 2025-04-01.", ssn),
    ('{{"ssn": "{v}", "state": "OH"}}', ssn), ("W-2 lists social security number {v}.", ssn),
    ("National Insurance number: {v}", nino), ("NI no. {v} — please update payroll.", nino),
    ("NINO={v}", nino), ("DNI {v}", dni), ("Mi DNI es {v} y vivo en Madrid.", dni),
    ("NIE: {v}", nie), ("Documento del cliente: {v}", nie), ("BSN: {v}", bsn),
    ("Mijn burgerservicenummer is {v}.", bsn), ("Steuer-ID: {v}", steuer_id),
    ("Meine steuerliche Identifikationsnummer lautet {v}.", steuer_id),
    ("Numéro de sécurité sociale : {v}", nir), ("NIR {v} (assuré)", nir), ("Patient {v}, admitted 2026-01-04.", nir),
]
for t, make in NID_T:
    add(t.format(v=make()), ["national_id"], "nid")

SECRET_T = [
    "OPENAI_API_KEY={v}", "client = OpenAI(api_key=\"{v}\")", "export GITHUB_TOKEN={v}",
    "aws_access_key_id = {v}", "Authorization: Bearer {v}", "headers = {{'Authorization': 'Bearer {v}'}}",
    "slack:\n  bot_token: {v}", "HF_TOKEN={v} huggingface-cli download", "const key = \"{v}\";",
    "Why does the API reject my key {v}?", "curl -H \"Authorization: Bearer {v}\" https://api.example.com/v1/models",
    '{{"api_key": "{v}", "model": "gpt"}}', "token: {v}", "git remote set-url origin https://oauth2:{v}@gitlab.example.com/team/app.git",
]
for t in SECRET_T:
    add(t.format(v=secret()), ["secret"], "secret")
for t in ["DB_PASSWORD=Tr0ub4dor&3", "password: correct-horse-battery-9", "db:\n  user: app\n  password: s3cr3tP4ss\n",
          "mysql -u root --password=Winter2026!", "The admin password is Hunter2Hunter2!",
          "DATABASE_URL=postgres://app:N0tAReal9ass@db.example.internal:5432/app",
          'config["client_secret"] = "Zq8xT2mLk9Pw4Rn7"', "spring.datasource.password=letmein42"]:
    add(t, ["secret"], "secret")

KEY_T = [
    "Here is my deploy key, why does ssh refuse it?\n{v}", "```\n{v}\n```\nIs this key format right?",
    "key.pem:\n{v}", '{{"private_key": "{v_json}"}}', "Paste from vault:\n{v}\n(rotate after)",
    "id_ed25519:\n{o}", "{o}\nssh says 'invalid format'.", "-- truncated paste --\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
    "gpg export:\n{g}", "cert bundle:\n-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n{e}",
    "tls:\n  key: |\n    {v_indent}", "Decrypt this for me:\n{enc}", "{v}", "The service account key: {v}",
    "openssl output:\n{e}", "Is it safe to commit this?\n{o}",
]
for t in KEY_T:
    v = pem()
    add(t.format(v=v, v_json=v.replace("\n", "\\n"), o=pem("OPENSSH PRIVATE KEY"),
                 g=pem("PGP PRIVATE KEY BLOCK"), e=pem("EC PRIVATE KEY"), enc=pem("ENCRYPTED PRIVATE KEY"),
                 v_indent=v.replace("\n", "\n    ")), ["private_key"], "pkey")

IP_T = [
    "sshd[812]: Failed password for invalid user admin from {v} port 52144 ssh2",
    "Block {v} at the firewall, it is scanning us.", "The customer's router WAN address is {v}.",
    "nginx: {v} - - [02/Mar/2026:10:14:07 +0000] \"GET /login HTTP/1.1\" 401 512",
    "server:\n  host: {v}\n  port: 8443", "ping {v} fails since the update", '{{"client_ip": "{v}"}}',
    "Allow-list: {v}", "X-Forwarded-For: {v}", "Le serveur {v} ne répond plus (ping 198.51.100.77 ok).",
    "DNS A record points to {v}", "Connection reset by peer ({v})", "rdp to {v} then open the share",
    "fail2ban banned {v}", "upstream backend {{ server {v}:8080; }}", "Geolocate {v} please",
    "VPN peer {v} handshake ok",
]
for i, t in enumerate(IP_T):
    add(t.format(v=IPV[i % len(IPV)]), ["ip_address"], "ip")

ADDR_T = [
    "Ship the replacement to {v}, Springfield.", "Billing address: {v}", "Customer moved to {v} last month.",
    '{{"address": "{v}", "city": "Example City"}}', "Lieferadresse: {v}, 10115 Berlin", "Adresse : {v}, 75002 Paris",
    "Pickup at {v} between 9 and 11.", "She lives at {v}.", "CRM: visit scheduled at {v}.", "Return label from {v}",
    "Send the keys to {v}.", "Dirección: {v}, Madrid", "Indirizzo: {v}, Roma", "Bezorgadres {v}, Amsterdam",
    "Deliver to {v} (ring twice)", "Invoice recipient: {v}, Apt 4", "Our new office: {v}", "Meet me at {v}.",
    "Wohnhaft {v}", "Old address was {v}, please update.",
]
for i, t in enumerate(ADDR_T):
    add(t.format(v=STREETS[i % len(STREETS)]), ["street_address"], "addr")

# ---- positives: several kinds (realistic agent inputs) --------------------------------------
MULTI = [
    ("Customer: {e}, {p}. Address {a}. Wants the invoice re-sent.", ["email", "phone", "street_address"]),
    ("Refund {c} and notify {e}.", ["payment_card", "email"]),
    ("Employee onboarding\nName: J. Doe\nSSN: {s}\nIBAN: {i}\nPhone: {p}", ["national_id", "iban", "phone"]),
    ("2026-03-02 10:14:07 WARN auth failed user={e} src={ip}", ["email", "ip_address"]),
    ('{{"customer": {{"email": "{e}", "phone": "{p}"}}, "ship_to": "{a}"}}', ["email", "phone", "street_address"]),
    ("config.yaml:\nsmtp:\n  host: {ip}\n  user: {e}\n  password: Xk29!pw-mail\n", ["ip_address", "email", "secret"]),
    ("Sehr geehrte Damen und Herren,\nbitte überweisen Sie auf {i}. Rückfragen: {p}.\nAdresse: {a}", ["iban", "phone", "street_address"]),
    ("deploy.sh: ssh -i key root@{ip} && export AWS_ACCESS_KEY_ID={k}", ["ip_address", "secret"]),
    ("Merci de contacter {e} ou le {p}.", ["email", "phone"]),
    ("Patient NIR {n}, contact {e}", ["national_id", "email"]),
    ("card {c} / billing {a}", ["payment_card", "street_address"]),
    ("Paste:\n{pk}\nserver {ip}", ["private_key", "ip_address"]),
    ("Hi! I'm moving to {a}; new phone {p}; bank {i}.", ["street_address", "phone", "iban"]),
    ("lead: {e} | {p} | source=webinar", ["email", "phone"]),
    ("Forward to {e}. Token for the test env: {k}", ["email", "secret"]),
    ("CRM note 14/02: called {p}, confirmed SSN {s} for the credit check.", ["phone", "national_id"]),
    ("Traceback: ConnectionError: could not reach {ip} (user {e})", ["ip_address", "email"]),
    ("Factura a nombre de DNI {d}, {a}", ["national_id", "street_address"]),
]
for t, kinds in MULTI:
    add(t.format(e=email(), p=phone(), a=R.choice(STREETS), c=R.choice(CARDS), s=ssn(), i=R.choice(IBANS),
                 ip=R.choice(IPV[:7]), k=secret(), n=nir(), pk=pem(), d=dni()), kinds, "multi")


# ---- more realistic positives: tool arguments, logs, configs, other languages ---------------
MORE = [
    ('{{"function": "create_contact", "arguments": {{"email": "{e}", "mobile": "{p}"}}}}', ["email", "phone"]),
    ('{{"query": "orders for {e} since 2026-01-01"}}', ["email"]),
    ("Kundin bittet um Rückruf: {p}. E-Mail: {e}", ["phone", "email"]),
    ("Cliente: {e} — pago con tarjeta {c}", ["email", "payment_card"]),
    ("Nuovo IBAN del fornitore: {i}", ["iban"]),
    ("Klant woont op {a} en belt vanaf {p}.", ["street_address", "phone"]),
    ("kern.log: [UFW BLOCK] SRC={ip} DST=10.0.0.5 PROTO=TCP DPT=22", ["ip_address"]),
    (".env\nSTRIPE_SECRET_KEY={k}\nDEBUG=false", ["secret"]),
    ("terraform.tfvars: access_key = \"{k}\"", ["secret"]),
    ("Translate into French: 'My social security number is {s}.'", ["national_id"]),
    ("Fix this YAML:\nuser: admin\npassword: Qz7!mailroom\nport: 5432", ["secret"]),
    ("Summarise: '{e} wrote that the parcel to {a} never arrived.'", ["email", "street_address"]),
    ("Why is {c} rejected by the payment form?", ["payment_card"]),
    ("Extract the fields from: Name Jane Doe; IBAN {i}; phone {p}", ["iban", "phone"]),
    ("nginx upstream {ip}:9000 timed out (client {ip2})", ["ip_address"]),
    ("Here's the key for prod, don't share:\n{pk}", ["private_key"]),
    ("git push https://{e2}:{k}@github.example.com/acme/app.git", ["secret"]),
    ("Registration form: DNI {d}, teléfono {p}", ["national_id", "phone"]),
    ("Rechnung an {a}, 80331 München, USt-ID folgt", ["street_address"]),
    ("On-call rota: Mon {p}, Tue {p2}", ["phone"]),
    ("BSN {b} ontbreekt in het dossier van {e}", ["national_id", "email"]),
    ("Customer card {c}, IBAN {i}, both verified.", ["payment_card", "iban"]),
    ("email={e}&password=Vx9!kq2Lm", ["email", "secret"]),
    ("Draft an apology to {e} about the outage on {ip}.", ["email", "ip_address"]),
    ("Ship-to: {a}\nPhone: {p}\nEmail: {e}", ["street_address", "phone", "email"]),
    ("HTTP header dump:\nAuthorization: Bearer {k}\nX-Real-IP: {ip}", ["secret", "ip_address"]),
    ("Tax form: Steuer-ID {t}, Anschrift {a}", ["national_id", "street_address"]),
    ("NI number {n}; phone {p}", ["national_id", "phone"]),
    ("Remind {e} that the wire to {i} is pending.", ["email", "iban"]),
    ("ssh-keygen printed this, is it fine?\n{pk}", ["private_key"]),
    ("Attacker IPs: {ip}, {ip2}", ["ip_address"]),
    ("Rappeler M. Martin au {p} au sujet du contrat.", ["phone"]),
]
for t, kinds in MORE:
    add(t.format(e=email(), e2=email().split("@")[0].replace("+", ""), p=phone(), p2=phone(), a=R.choice(STREETS),
                 c=R.choice(CARDS), s=ssn(), i=R.choice(IBANS), ip=R.choice(IPV[:7]), ip2=R.choice(IPV[7:9]),
                 k=secret(), pk=pem(R.choice(["RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "PRIVATE KEY"])),
                 d=dni(), b=bsn(), t=steuer_id(), n=nino()), kinds, "more")

# ---- negatives ------------------------------------------------------------------------------
NEG = [
    "Upgrade to Python 3.11.4 and run pytest again.", "Released v10.0.0.1 with bug fixes.", "version 1.2.3.4 of the firmware",
    "llama.cpp b4567 on Ubuntu 24.04.1 LTS", "node --version prints v20.11.1", "pip install numpy==1.26.4",
    "requires: fastapi>=0.110,<0.111", "Chrome/124.0.6367.91 Safari/537.36", "Build 2026.03.02.1147 passed.",
    "ISBN 978-0-306-40615-7", "ISBN-13: 9780306406157", "DOI 10.1000/182",
    "The meeting is on 2026-03-02 at 10:30.", "Logged at 2026-03-02T10:14:07.123Z", "Date: 02/03/2026 14:30",
    "Timestamp 1709374447123 ms", "Uptime 12:34:56, load 0.42 0.37 0.31", "Deadline: 31.12.2026, 23:59 Uhr",
    "Total: $1,299.00 incl. tax", "Preis: 1.234,56 €", "The quote was EUR 12 500 for 3 licences.",
    "Order #4411-2093-7781 shipped.", "Invoice INV-2026-000184 is overdue.", "Order number 5550123456 was cancelled.",
    "Tracking: 1Z 999 AA1 01 2345 6784", "Ticket 12345678 closed.", "PO 4500018234 approved.",
    "Case ref 0203 4455 9988 escalated.", "SKU 0401-2233-55 out of stock", "Account no. 000123456789 (internal ledger id)",
    "Card-like but invalid: 4111 1111 1111 1112", "test value 1234 5678 9012 3456", "1234-5678-9876-5432 is not a real number",
    "IBAN format example with bad check: DE00 3704 0044 0532 0130 00", "GB00 WEST 1234 5698 7654 32 (typo)",
    "NL00ABNA0417164300 fails validation", "Country code DE and postcode 10115.",
    "UUID 123e4567-e89b-12d3-a456-426614174000", "request_id=9f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b",
    "commit 3f2a9c1b7e4d5a6b8c9d0e1f2a3b4c5d6e7f8a9b", "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "git checkout a1b2c3d", "md5 d41d8cd98f00b204e9800998ecf8427e", "Docker image sha256:9b2a7f8c1d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a",
    "Main Street is closed for the parade.", "We walked down Baker Street yesterday.", "The Avenue of the Americas is busy.",
    "Take the 3rd exit onto High Road.", "Chapter 12 Drive Theory explains it.", "She scored 3 Goals in the Park.",
    "Enter your password to continue.", "Forgot your password? Click the link below.", "The password field must not be empty.",
    "password: <your password here>", "api_key: ${OPENAI_API_KEY}", "token = os.environ['GITHUB_TOKEN']",
    "api_key=api_key", "self.password = password", "password: str = Field(min_length=12)",
    "def login(user: str, password: str) -> bool:", "Set OPENAI_API_KEY in your shell before running.",
    "Authorization: Bearer <token>", "Authorization: Bearer $TOKEN", "secret: null",
    "password=*****", "Use the `--api-key` flag or SLMNODE_API_KEY.", "max_tokens: 512",
    "token count: 2048", "The token is expired, please log in again.", "Your secret is safe with us.",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample user@host",
    "Listen on 127.0.0.1:8080", "bind 0.0.0.0 port 80", "netmask 255.255.255.0", "broadcast 255.255.255.255",
    "IPv6 loopback is ::1", "std::vector<int> v; v.push_back(3);", "MAC 00:1a:2b:3c:4d:5e",
    "Time 10:30:00 UTC", "ratio 16:9 screen", "Bible verse John 3:16",
    "Use @property for getters.", "Install @types/node@20.11.1", "Follow us @example on social media.",
    "ssh git@github.com:org/repo.git", "Email us via the contact form.", "user at example dot com",
    "The function returns a dict with keys name, email and phone.", "Ask the customer for their IBAN.",
    "We never store card numbers.", "SELECT email, phone FROM customers WHERE id = 42;",
    "{\"model\": \"gemma3\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 64}",
    "for i in range(10):\n    print(i * 3.14159)", "x = 4111 + 1111  # sums", "SELECT COUNT(*) FROM orders WHERE total > 100.00;",
    "INFO 2026-03-02 10:14:07 worker started pid=1234 threads=4", "WARN disk 91% full on /dev/mmcblk0p2",
    "GET /v1/models 200 3.2ms", "load average: 1.05, 0.98, 0.77", "[2026-03-02 10:14:07] job 7781 finished in 12.4s",
    "Temperature 61.3'C, throttled=0x0", "Memory: 7.6 GiB total, 5.1 GiB free", "tok/s 12.41 prompt, 4.87 gen",
    "Coordinates 52.5200, 13.4050", "lat=48.8566 lon=2.3522", "Pi 4B 8 GB, 4x Cortex-A72 @ 1.8 GHz",
    "Room 101 is on floor 3.", "Flight LH 2024 departs 07:45 from gate B12.", "The 1600s were turbulent.",
    "Call the function twice.", "Phone support is closed on Sundays.", "Ring buffer size 4096",
    "Score: 98-87 final", "Population 3 645 000 (2023)", "Part number 0171-2345-67",
    "Release 2026.1 ships on 15.04.2026.", "Serial 2B4X-99QK-7731", "Model number A2337",
    "color: #ffcc00; margin: 0 0 12px 4px;", "rgba(255, 204, 0, 0.5)", "matrix [[1, 0], [0, 1]]",
    "The answer is 42.", "Summarise the following article about urban gardening.", "Translate 'good morning' into German.",
    "Write a haiku about autumn leaves.", "What's the capital of Australia?", "Explain mod-97 checks for IBANs in simple terms.",
    "How does the Luhn algorithm work?", "Give me three tips for writing unit tests.", "Refactor this loop into a list comprehension.",
    "Rue de la Paix is a famous Monopoly square.", "Die Hauptstraße ist gesperrt.", "Via Roma è la strada principale.",
    "Calle Mayor es muy bonita.", "Baker Street station, Bakerloo line", "the street number is missing from the form",
    "AKIA is the prefix of AWS access key ids.", "GitHub tokens start with ghp_ followed by 36 characters.",
    "sk- keys are OpenAI secrets; never commit them.", "JWTs look like header.payload.signature.",
    "The ID card number goes in field 7.", "SSN format is AAA-GG-SSSS.", "NINO looks like two letters, six digits, one letter.",
    "Your BSN is on your passport.", "Steuer-ID: bitte eintragen", "Enter your DNI without spaces.",
    "Bank holiday on 01.05.", "Call us at the number on the back of your card.", "Telephone: see website",
    "Range 192.0.2.0 to 192.0.2.255 is reserved for documentation in RFC 5737.", "Subnet mask /24 means 256 addresses.",
    "octets 10 20 30 40", "1.1.1.1.1 is not an address", "Port 8080/tcp open",
    "Error code 0x80070005: access denied", "exit status 137 (OOM killed)", "HTTP/1.1 503 Service Unavailable",
    "Lottery numbers 04 11 23 35 42 49", "Scores 010 020 030", "Pages 101-115 and 230-244",
    "Zip codes 10115, 75002 and 28013.", "Ref 2026/03/0042", "Batch 0042-0099",
]
for t in NEG:
    add(t, [], "neg")

# generated hard negatives: invalid-Luhn card-likes, bad-checksum IBANs, hashes, UUIDs, ids
for _ in range(8):
    while True:
        d = "4" + rdig(15)
        if not luhn_ok(d):
            break
    add(f"Declined test: {spaced(d)} (fails Luhn)", [], "neg")
for cc, n in (("DE", 18), ("FR", 23), ("ES", 20), ("IT", 23)):
    good = iban(cc, rdig(n))
    bad = good[:2] + f"{(int(good[2:4]) + 1) % 100:02d}" + good[4:]
    add(f"Rejected IBAN {spaced(bad)} — checksum mismatch", [], "neg")
for _ in range(6):
    add(f"object {rtok(40, '0123456789abcdef')} uploaded, size {R.randint(1000, 99999)} bytes", [], "neg")
for _ in range(6):
    h = rtok(32, "0123456789abcdef")
    add(f"trace_id={h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]} span={h[:16]}", [], "neg")
for _ in range(6):
    add(f"Order {R.randint(100000, 999999)}-{R.randint(10, 99)} ready, invoice {rdig(10)}", [], "neg")

# held-out batch A: written after tuning, measured once before the fixes it prompted (README)
from heldout import HELD_NEG, HELD_POS  # noqa: E402

for t in HELD_NEG:
    add(t, [], "heldneg")
for t, kinds in HELD_POS:
    add(t, kinds, "heldpos")
# held-out batch B: written blind after batch A's fixes; not tuned against (its one FP stays)
from heldout_b import HELD_NEG_B, HELD_POS_B  # noqa: E402

for t in HELD_NEG_B:
    add(t, [], "heldneg")
for t, kinds in HELD_POS_B:
    add(t, kinds, "heldpos")

print("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
