"""The grammar words of requests: how people say "now", "no longer", "undo", "why", ask questions.

These are English function words and command verbs, not knowledge: relations, their phrases and
templates, and type names all come from the schema (``kg_data/schema.yaml``).
"""

from __future__ import annotations

COPULAS = ("is", "was", "are", "were", "be", "been", "becomes", "will be", "has been", "have been",
           "had been", "am")
DETERMINERS = ("the", "a", "an", "one", "its", "his", "her", "their", "our", "my", "your")

#: Words that turn a statement into a retraction, removed before patterns are matched.
NEGATIONS = ("no longer", "not anymore", "not any more", "not any longer", "anymore", "any more",
             "any longer", "not", "never", "no more", "nor")
#: Words that mark a new value ("X is now Y"), removed before patterns are matched.
REPLACE_MARKERS = ("from now on", "as of today", "as of now", "now", "actually", "in fact",
                   "instead", "nowadays", "these days", "henceforth")
#: Words that change nothing about the request, removed wherever they are.
FILLERS = ("please", "kindly", "still", "currently", "also", "really", "officially", "already", "both",
           "as well", "indeed", "presently", "meanwhile")
#: The same, but only at the start or end of a clause ("ok, …", "…, thanks").
EDGE_FILLERS = ("thanks", "thank you", "fyi", "ok", "okay", "hey", "hi", "hello", "so", "well",
                "by the way", "btw", "just so you know", "i think", "i believe", "today", "too",
                "correct", "right", "yes", "oh", "hmm", "um", "lol", "pls", "plz", "then", "and",
                "but", "also", "dear oneedit", "oneedit",
                # framing around a fact ("please note that …", "…, can you update it")
                "please note that", "note that", "please note", "heads up", "again",
                "yesterday", "as of yesterday", "i guess", "i heard", "i read that", "i heard that",
                "can you update it", "could you update it", "please update it", "update it",
                "can you update that", "please fix it", "if i remember correctly", "apparently",
                "for the record", "for your information", "just to let you know", "to be clear",
                "could you", "can you", "would you", "please could you", "never mind")
#: A clause made only of these says nothing ("No, …", "Correction: …").
INTERJECTIONS = ("no", "yes", "correction", "wait", "sorry", "oops", "ok", "okay", "right", "true",
                 "never mind", "nevermind", "scratch that",
                 "update", "note", "fyi", "hey", "hi", "hello", "thanks", "thank you", "please", "well",
                 "so", "hmm", "um", "ah", "oh")
#: "Jeff Bezos stepped down as CEO of Amazon": leaving a role retracts it.
LEAVE_VERBS = ("stepped down as", "steps down as", "has stepped down as", "resigned as", "resigns as",
               "has resigned as", "quit as", "quits as", "left as", "was fired as", "was removed as",
               "has been removed as", "was dismissed as", "retired as", "retires as", "has retired as",
               "was ousted as", "is leaving as", "stepped down from being", "is no longer serving as")
#: A time at the end of a statement ("… since 1990") says when, not what: it is dropped.
TIME_WORDS = ("since", "as of", "from", "in", "until", "starting", "effective", "beginning")
#: Adjectives allowed between a determiner and a relation phrase ("the *new* capital").
NEW_ADJECTIVES = ("new", "next", "incoming")
ADJECTIVES = ("current", "present", "main", "primary", "principal", "sole", "only", "real",
              "true", "actual", "legal", "sitting", "incumbent", "reigning", "official", "sole")

QUESTION_WORDS = ("what", "who", "whom", "whose", "which", "where", "when", "how")
YES_NO_STARTS = ("is", "are", "was", "were", "does", "do", "did", "has", "have", "had", "can")
QUERY_COMMANDS = ("tell me", "show me", "show", "give me", "list", "find", "look up", "lookup",
                  "name", "get", "fetch", "i want to know", "i would like to know", "do you know",
                  "can you tell me", "could you tell me", "what about", "any idea", "do you happen to know",
                  "i wonder", "i was wondering")

#: "remove the fact that …": commands that retract what follows.
RETRACT_COMMANDS = ("remove", "delete", "drop", "retract", "erase", "forget", "withdraw",
                    "take out", "get rid of", "strike", "unset", "clear")
#: "add the fact that …": commands that assert what follows.
ASSERT_COMMANDS = ("add", "record", "assert", "remember", "store", "save", "insert", "learn",
                   "note that", "register", "know that", "be aware that", "update the kg",
                   "write down")
#: "set the capital of France to Lyon": commands that replace.
REPLACE_COMMANDS = ("set", "change", "update", "switch", "move", "make", "correct", "fix")
FACT_NOUNS = ("fact", "facts", "statement", "claim", "triple", "assertion", "entry", "information",
              "info", "record", "knowledge")
FALSE_WORDS = ("false", "wrong", "incorrect", "untrue", "not true", "not correct", "a mistake",
               "an error", "outdated", "out of date", "no longer true", "no longer correct")
#: "X became the CEO of Y", "the capital changed to Lyon".
BECOME_VERBS = ("became", "become", "becomes", "has become", "have become", "was appointed",
                "has been appointed", "was named", "has been named", "was elected",
                "has been elected", "was made", "took over as", "takes over as", "is appointed",
                "was replaced by", "has been replaced by", "succeeded")
CHANGED_VERBS = ("changed to", "has changed to", "was changed to", "is changed to", "moved to",
                 "has moved to", "was moved to", "switched to", "has switched to", "is now",
                 "became", "has become", "turned into", "went to", "goes to", "will be")

UNDO_VERBS = ("undo", "revert", "roll back", "rollback", "reverse", "cancel", "take back",
              "back out", "unapply", "rewind", "scrap", "scratch", "put back", "go back", "change back")
#: Verbs of an undo split by its object ("roll that back", "take it back", "put the graph back").
UNDO_SPLIT_VERBS = ("roll", "take", "put", "change", "set")
EDIT_NOUNS = ("edit", "edits", "change", "changes", "update", "updates", "modification",
              "modifications", "transaction", "transactions", "request", "requests", "entry")
LATEST_WORDS = ("last", "latest", "previous", "most recent", "recent", "final", "prior")
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "a couple of": 2, "couple of": 2}

WHY_WORDS = ("why", "how come", "explain why", "explain", "justify", "what makes you think",
             "on what basis", "what is the reason", "what's the reason")
MODEL_NOUNS = ("the model", "the language model", "the lm", "the llm", "model", "the ai",
               "the network", "the neural network")
KG_NOUNS = ("the kg", "the knowledge graph", "the graph", "the database", "the system", "you",
            "oneedit", "the knowledge base", "the kb")
SAY_VERBS = ("say", "says", "said", "think", "thinks", "believe", "believes", "claim", "claims",
             "answer", "answers", "predict", "predicts", "output", "outputs", "state", "states",
             "generate", "generates", "know", "knows", "store", "stores", "have", "has", "hold",
             "holds", "reply", "replies", "respond", "responds", "give", "gives", "return")
HISTORY_NOUNS = ("history", "log", "changes", "edits", "revisions", "provenance", "audit trail",
                 "audit log", "timeline", "change log", "changelog", "past edits", "edit history",
                 "revision history")
#: History nouns that need no "show me" before them ("history of France").
BARE_HISTORY_NOUNS = ("history", "provenance", "timeline", "changelog", "edit history",
                      "revision history", "audit trail")
#: "Lyon is the capital of France instead of Paris": the value being replaced follows these.
PREVIOUS_MARKERS = ("instead of", "rather than", "in place of", "replacing")
SHOW_VERBS = ("show", "display", "give", "list", "print", "get", "see", "view", "what is",
              "tell", "fetch", "open", "find")

PRONOUNS = ("it", "its", "he", "his", "him", "she", "her", "they", "their", "them", "there",
            "this", "that")

#: A new entity's name never contains these (a slot holding them spans more than a name).
CLAUSE_WORDS = frozenset("""is was are were be been being am has have had does do did will would
should could can may might must not no now longer anymore that which who whom whose what where
when why how if then than because while also still its his her their it he she they them this
these those there here i you we me us my your our""".split())
