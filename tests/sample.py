"""The five reader comments under the user's sample article
(shared/seeds/000_5bf2e83c85908633.txt), shared by the stance tests: all five favor the
position that the US should restrict China's access to advanced chips and AI technology."""

SAMPLE_COMMENTS = [
    "Protecting US technology is paramount. It is important to see the concerns of the "
    "government.",
    "We need to be vigilant about China's tech advances. This is a smart move by Sacks and "
    "others.",
    "Controlling these technologies is the only way to protect US interests in the long run. "
    "We need to be in the front",
    "The AI race is critical, and the US is right to focus on staying ahead. This is national "
    "significance.",
    "Better to acknowledge China's progress than to be blindsided. This is the right approach.",
]
