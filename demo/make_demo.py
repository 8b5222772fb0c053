"""Writes demo/demo.jsonl: the demo project's 30 dialogues with three-prompt LLM labels.

The dialogues and their intended labels are written by hand below (Parley's own text, not
taken from any dataset). The LLM answers are simulated: each of three prompts answers with
the intended label most of the time and a plausible confusion otherwise, with a stated
confidence, seeded so the file is reproducible. Run: python demo/make_demo.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

I, Q, D, C = "inform", "question", "directive", "commissive"  # noqa: E741 - short tags keep the table readable
POS, NEG, NEU = "positive", "negative", "neutral"

DIALOGUES: list[tuple[str, list[tuple[str, str, str]]]] = [
    (
        "orders",
        [
            ("Hi, my order hasn't arrived and it's been ten days.", I, NEG),
            ("I'm sorry to hear that. Could you give me the order number?", Q, NEU),
            ("Sure, it's 48213.", I, NEU),
            ("Thanks. It looks like the parcel was held at the depot.", I, NEU),
            ("Please send it out again as soon as possible.", D, NEG),
            ("I'll have it re-dispatched today with express shipping.", C, POS),
            ("Great, thank you so much!", I, POS),
        ],
    ),
    (
        "refunds",
        [
            ("I'd like a refund for the blender I bought last week.", D, NEU),
            ("Of course. What was wrong with it?", Q, NEU),
            ("It started smoking the second time I used it.", I, NEG),
            ("That's dangerous, I'm glad you stopped using it.", I, NEG),
            ("I will refund the full amount to your card within three days.", C, POS),
            ("Do I need to send it back?", Q, NEU),
            ("No, just dispose of it safely.", D, NEU),
        ],
    ),
    (
        "booking",
        [
            ("Do you have a table for four tonight at eight?", Q, NEU),
            ("Let me check. Yes, we have one by the window.", I, POS),
            ("Wonderful, please book it under Martin.", D, POS),
            ("Done. We'll hold it for fifteen minutes.", C, NEU),
            ("Can we bring a small dog?", Q, NEU),
            ("Dogs are welcome on the terrace only.", I, NEU),
        ],
    ),
    (
        "tech",
        [
            ("My laptop won't connect to the office wifi.", I, NEG),
            ("Have you tried forgetting the network and joining again?", Q, NEU),
            ("Yes, twice. It still says authentication failed.", I, NEG),
            ("Your password probably expired. Reset it on the portal.", D, NEU),
            ("Oh, that worked. I feel silly now.", I, POS),
            ("It happens to everyone, don't worry.", I, POS),
        ],
    ),
    (
        "travel",
        [
            ("What time does the last train to Leeds leave?", Q, NEU),
            ("The last one leaves at 23:10 from platform four.", I, NEU),
            ("Is it usually on time?", Q, NEU),
            ("Mostly, though there were delays all week because of the storm.", I, NEG),
            ("I'll take the earlier one then, just to be safe.", C, NEU),
        ],
    ),
    (
        "work",
        [
            ("Could you review my report before Friday?", D, NEU),
            ("Sure, I'll read it tomorrow morning.", C, POS),
            ("Thanks, the second chapter is the weakest.", I, NEG),
            ("Why do you think so?", Q, NEU),
            ("The numbers don't support the conclusion yet.", I, NEG),
            ("Send me the raw data and I'll help you check them.", D, POS),
        ],
    ),
    (
        "health",
        [
            ("I've had a headache for three days.", I, NEG),
            ("Have you been sleeping well?", Q, NEU),
            ("Not really, I've been working late.", I, NEG),
            ("Try to rest and drink more water.", D, NEU),
            ("If it doesn't improve, come back on Monday.", D, NEU),
            ("I will, thank you doctor.", C, POS),
        ],
    ),
    (
        "shopping",
        [
            ("Does this jacket come in a larger size?", Q, NEU),
            ("We have it in large and extra large.", I, NEU),
            ("Could I try the large one?", D, NEU),
            ("Here you are. The fitting rooms are on the left.", I, NEU),
            ("It fits perfectly, I love it!", I, POS),
            ("It really suits you.", I, POS),
        ],
    ),
    (
        "family",
        [
            ("Mum, can I go to Sara's party on Saturday?", Q, NEU),
            ("Will her parents be at home?", Q, NEU),
            ("Yes, and it ends at ten.", I, NEU),
            ("All right, but call me when you get there.", D, NEU),
            ("I promise I will.", C, POS),
            ("Have fun, sweetheart.", D, POS),
        ],
    ),
    (
        "billing",
        [
            ("Why was I charged twice this month?", Q, NEG),
            ("I can see a duplicate payment on the fifth.", I, NEU),
            ("This is the third time it has happened. I'm really annoyed.", I, NEG),
            ("I understand. I'll reverse the second charge right away.", C, NEU),
            ("And please make sure it doesn't happen again.", D, NEG),
            ("I've flagged your account for a manual check every month.", I, NEU),
        ],
    ),
    (
        "weather",
        [
            ("Is it going to rain this afternoon?", Q, NEU),
            ("The forecast says heavy showers after three.", I, NEU),
            ("Ugh, I wanted to go cycling.", I, NEG),
            ("Go this morning then, it's sunny until two.", D, NEU),
            ("Good idea, I'll leave now.", C, POS),
        ],
    ),
    (
        "school",
        [
            ("Did you finish the chemistry homework?", Q, NEU),
            ("Almost, I'm stuck on the last question.", I, NEG),
            ("Come over after dinner and we'll do it together.", D, POS),
            ("That would be great, thanks!", I, POS),
            ("Bring your notes from Tuesday.", D, NEU),
        ],
    ),
    (
        "apartment",
        [
            ("The heating in my flat has been broken since Monday.", I, NEG),
            ("I'm sorry. Is it the radiators or the boiler?", Q, NEU),
            ("The boiler, it shows an error code E4.", I, NEU),
            ("An engineer will come tomorrow between nine and twelve.", C, NEU),
            ("Finally. It's freezing in here.", I, NEG),
            ("Please leave the boiler switched off until then.", D, NEU),
        ],
    ),
    (
        "sports",
        [
            ("Did you watch the match last night?", Q, NEU),
            ("Yes! What a goal in the last minute!", I, POS),
            ("I couldn't believe it, I jumped off the sofa.", I, POS),
            ("Are you going to the final?", Q, NEU),
            ("I'll try to get tickets tomorrow.", C, POS),
        ],
    ),
    (
        "bank",
        [
            ("I lost my bank card this morning.", I, NEG),
            ("I've blocked it for you. Has anything been spent?", Q, NEU),
            ("I don't think so.", I, NEU),
            (
                "No transactions since yesterday. A new card will arrive in five days.",
                I,
                NEU,
            ),
            ("That's a relief, thank you.", I, POS),
        ],
    ),
    (
        "restaurant",
        [
            ("Excuse me, this soup is cold.", I, NEG),
            ("I'm so sorry, I'll bring you a fresh bowl.", C, NEU),
            ("Could you also bring some bread?", D, NEU),
            ("Of course. The dessert is on the house tonight.", C, POS),
            ("Oh, that's very kind.", I, POS),
        ],
    ),
    (
        "moving",
        [
            ("We're moving to Lisbon in June.", I, POS),
            ("Really? That's exciting! Why Lisbon?", Q, POS),
            ("My wife got a job at the university there.", I, POS),
            ("You have to send me pictures.", D, POS),
            ("We'll invite you as soon as we've unpacked.", C, POS),
        ],
    ),
    (
        "car",
        [
            ("My car makes a strange noise when I brake.", I, NEG),
            ("It might be the brake pads. When were they last changed?", Q, NEU),
            ("I honestly have no idea.", I, NEU),
            ("Bring it in on Thursday and we'll take a look.", D, NEU),
            ("How much will it cost?", Q, NEU),
            ("About eighty pounds if it's only the pads.", I, NEU),
        ],
    ),
    (
        "library",
        [
            ("Can I renew these books online?", Q, NEU),
            ("Yes, through your account, unless someone reserved them.", I, NEU),
            ("One of them is reserved, it seems.", I, NEG),
            ("Then please return that one by Friday.", D, NEU),
            ("OK, I'll drop it off on my way to work.", C, NEU),
        ],
    ),
    (
        "friends",
        [
            ("I'm sorry I missed your birthday.", I, NEG),
            ("Don't worry, I know you were busy.", I, POS),
            ("Let me take you out for dinner this weekend.", C, POS),
            ("You don't have to, but I'd love that.", I, POS),
            ("Saturday at seven?", Q, NEU),
            ("Perfect.", I, POS),
        ],
    ),
    (
        "subscription",
        [
            ("How do I cancel my subscription?", Q, NEU),
            ("Go to Settings, then Billing, then Cancel plan.", D, NEU),
            ("Will I lose my saved projects?", Q, NEG),
            ("No, they stay available for ninety days.", I, NEU),
            ("Good to know, thanks.", I, POS),
        ],
    ),
    (
        "pets",
        [
            ("Our cat hasn't eaten anything since yesterday.", I, NEG),
            ("Is she drinking water?", Q, NEU),
            ("A little, but she's hiding under the bed.", I, NEG),
            ("Bring her to the clinic this afternoon.", D, NEU),
            ("We'll be there at four.", C, NEU),
            ("Don't panic, it's often something minor.", D, POS),
        ],
    ),
    (
        "hotel",
        [
            ("I booked a double room but got a single.", I, NEG),
            ("Let me look into that for you.", C, NEU),
            ("You're right, that was our mistake.", I, NEU),
            ("I've upgraded you to a suite for the same price.", I, POS),
            ("Wow, that's more than I expected!", I, POS),
        ],
    ),
    (
        "cooking",
        [
            ("How long should I bake the bread?", Q, NEU),
            ("About forty minutes at two hundred degrees.", I, NEU),
            ("Should I cover it?", Q, NEU),
            ("Cover it for the first twenty minutes.", D, NEU),
            ("It smells amazing already.", I, POS),
        ],
    ),
    (
        "exam",
        [
            ("I failed my driving test again.", I, NEG),
            ("Oh no. What happened?", Q, NEG),
            ("I forgot to check the mirror at a roundabout.", I, NEG),
            ("You'll pass next time, you're a good driver.", I, POS),
            ("I'll book another lesson before the retest.", C, NEU),
        ],
    ),
    (
        "delivery",
        [
            ("Can you deliver on Sunday?", Q, NEU),
            ("We don't deliver on Sundays, I'm afraid.", I, NEG),
            ("Then Monday morning, please.", D, NEU),
            ("Monday between eight and ten is confirmed.", C, NEU),
            ("Leave it with the neighbour if I'm out.", D, NEU),
        ],
    ),
    (
        "gym",
        [
            ("I'd like to cancel my gym membership.", D, NEU),
            ("May I ask why you're leaving?", Q, NEU),
            ("The changing rooms are always dirty.", I, NEG),
            ("Thanks for telling us. We'll speak to the cleaning team.", C, NEU),
            ("I still want to cancel.", I, NEG),
            ("Understood, your membership ends this month.", I, NEU),
        ],
    ),
    (
        "concert",
        [
            ("Guess what, I got two tickets for the concert!", I, POS),
            ("No way! How did you manage that?", Q, POS),
            ("My cousin works at the venue.", I, NEU),
            ("You have to take me with you.", D, POS),
            ("Of course I'll take you, who else?", C, POS),
        ],
    ),
    (
        "insurance",
        [
            ("Does my policy cover water damage?", Q, NEU),
            ("It covers sudden leaks, not slow damage over time.", I, NEU),
            ("The pipe burst last night.", I, NEG),
            ("Then you're covered. Send photos of the damage.", D, NEU),
            ("I'll send them within the hour.", C, NEU),
            ("We'll get back to you by tomorrow.", C, NEU),
        ],
    ),
    (
        "neighbours",
        [
            ("Could you turn the music down a bit?", D, NEU),
            ("Sorry, I didn't realise it was so loud.", I, NEG),
            ("It's fine, it's just that the baby is sleeping.", I, NEU),
            ("I'll keep it quiet from now on.", C, POS),
            ("Thank you, I really appreciate it.", I, POS),
        ],
    ),
]

CONFUSIONS = {
    "act": {I: [D, Q], Q: [D, I], D: [C, I], C: [I, D]},
    "sentiment": {POS: [NEU], NEG: [NEU], NEU: [POS, NEG]},
}
ERROR_RATE = {"P1": 0.10, "P2": 0.20, "P3": 0.15}


def _answer(rng: random.Random, task: str, gold: str, prompt: str) -> dict[str, object]:
    wrong = rng.random() < ERROR_RATE[prompt]
    label = rng.choice(CONFUSIONS[task][gold]) if wrong else gold
    confidence = round(rng.uniform(0.5, 0.8) if wrong else rng.uniform(0.7, 0.98), 2)
    return {"prompt": prompt, "label": label, "confidence": confidence}


def main() -> None:
    rng = random.Random(20261123)
    lines = []
    for n, (topic, turns) in enumerate(DIALOGUES, start=1):
        out_turns = []
        for position, (text, act, sentiment) in enumerate(turns):
            llm = {
                task: [_answer(rng, task, gold, p) for p in ERROR_RATE]
                for task, gold in (("act", act), ("sentiment", sentiment))
            }
            speaker = "customer" if position % 2 == 0 else "agent"
            out_turns.append({"speaker": speaker, "text": text, "llm": llm})
        lines.append(
            json.dumps(
                {
                    "id": f"demo-{n:02d}",
                    "metadata": {"topic": topic},
                    "turns": out_turns,
                }
            )
        )
    path = Path(__file__).with_name("demo.jsonl")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} dialogues to {path}")


if __name__ == "__main__":
    main()
