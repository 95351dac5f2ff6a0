"""Fixed vocabularies the simulated world draws from (names, message bodies, tags)."""

from __future__ import annotations

FIRST_NAMES = (
    "Ada", "Ben", "Carla", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Kira", "Luca", "Maya", "Nikhil", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara",
    "Umar", "Vera", "Wes", "Xin", "Yara", "Zoe", "Aiko", "Bruno", "Chloe", "Dmitri",
    "Emeka", "Freya", "Gita", "Hana", "Ivan", "Jade", "Kofi", "Lena", "Mateo", "Nora",
)
LAST_NAMES = (
    "Adams", "Bauer", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hoffmann", "Ito",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Quist", "Rossi",
    "Silva", "Tanaka", "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zimmer", "Alvarez", "Brandt",
    "Chen", "Dahl", "Evans", "Ferreira", "Gupta", "Haas", "Iqbal", "Jovanovic", "Klein", "Lund",
)

AGENTS = (
    ("Alice Martin", "Alice"), ("Bilal Haddad", "Bilal"), ("Chen Wei", "Chen"),
    ("Diana Novak", "Diana"), ("Emil Sorensen", "Emil"), ("Fatima Zahra", "Fatima"),
    ("George Papas", "George"), ("Hiro Sato", "Hiro"),
)
BOTS = (("Drift Bot", "Driftbot"), ("Lead Qualifier", "Qualibot"))

TIME_ZONES = ("Europe/Paris", "America/New_York", "America/Chicago", "Europe/London", "Asia/Tokyo")

CONTACT_OPENERS = (
    "<p>Hi, I have a question about pricing.</p>",
    "<p>Hello! Can someone help me with my account?</p>",
    "<p>Is there a free trial for the Pro plan?</p>",
    "<p>My invoice looks wrong, who can I talk to?</p>",
    "<p>Do you integrate with Salesforce?</p>",
    "<p>I can't log in since this morning.</p>",
    "<p>We'd like a demo for our team of 40.</p>",
    "<p>How do I export my data?</p>",
)
CONTACT_REPLIES = (
    "<p>Thanks, that helps.</p>", "<p>Ok, and what about annual billing?</p>",
    "<p>Sure, my email is in the form.</p>", "<p>Still not working, sorry.</p>",
    "<p>Great, thank you!</p>", "<p>Can you send me the link?</p>",
    "<p>We're on the Team plan.</p>", "<p>Got it.</p>", "<p>One more thing...</p>",
)
AGENT_REPLIES = (
    "<p>Hi! Happy to help with that.</p>", "<p>Let me check that for you.</p>",
    "<p>Could you tell me the email on the account?</p>",
    "<p>Here is the link: <a href=\"https://example.com/docs\">docs</a></p>",
    "<p>I've fixed it on our side, can you try again?</p>",
    "<p>Yes, annual billing gets two months free.</p>",
    "<p>I'll book a demo for Thursday.</p>", "<p>Anything else I can do?</p>",
)
AGENT_OUTREACH = (
    "<p>Hi there! Saw you looking at our pricing page, any questions?</p>",
    "<p>Hey! Want a quick tour of the new dashboard?</p>",
)
AGENT_CORRECTIONS = ("<p>Sorry, wrong chat! Let me look at your question.</p>",)
BOT_WELCOMES = (
    "<p>Hi 👋 What brings you here today?</p>",
    "<p>Welcome! I'm a bot. How can I help?</p>",
)
BOT_REPLIES = (
    "<p>Got it. What's your company size?</p>", "<p>Thanks! Which plan are you on?</p>",
    "<p>Here's an article that might help.</p>", "<p>Could you share your work email?</p>",
)
BOT_HANDOFFS = ("<p>Let me connect you with someone on our team.</p>",)
BOT_GOODBYES = ("<p>Thanks! We'll follow up by email.</p>", "<p>Glad I could help!</p>")
BOT_NUDGES = ("<p>Still there? I'm happy to help.</p>",)
PRE_MESSAGES = (
    "<p>Hi there 👋 Questions about pricing? Ask away.</p>",
    "<p>Welcome back! Our team usually replies in a few minutes.</p>",
)
PRIVATE_NOTES = (
    "<p>VIP customer, handle with care.</p>", "<p>Looped in billing.</p>",
    "<p>Possible churn risk.</p>", "<p>@team can someone check the SSO config?</p>",
)
REPLACED_BODIES = ("<p>Here is the correct link: <a href=\"https://example.com/help\">help</a></p>",)
BOT_BUTTONS = (
    {"label": "Talk to sales", "value": "sales", "type": "action"},
    {"label": "Get support", "value": "support", "type": "action"},
    {"label": "Just browsing", "value": "browsing", "type": "action"},
)
TAGS = (
    {"color": "#E2574C", "name": "billing"}, {"color": "#4C9AE2", "name": "sales"},
    {"color": "#5BC076", "name": "support"}, {"color": "#F2B134", "name": "bug"},
)
USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
)
