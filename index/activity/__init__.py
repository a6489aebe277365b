"""What readers do with the bot, kept for the admins and for the readers themselves: the questions asked
and the answers' 👍/👎 votes (the insights report, open questions closed by later adds), the topics
readers follow (alerts on new articles), and /forgetme. Stored through the library's store
(index/stores/*/activity.py); askers are kept only as salted hashes (privacy.py)."""
