"""Builders of small Telegram Desktop HTML exports in the exact markup the desktop app writes
(block tags on their own lines, one space of indent per level, text with <br> for newlines)."""

from __future__ import annotations

from pathlib import Path

HEAD = """<!DOCTYPE html>
<html>

 <head>

  <meta charset="utf-8"/>
<title>Exported Data</title>

  <meta name="viewport" content="width=device-width, initial-scale=1.0"/>

  <link href="css/style.css" rel="stylesheet"/>

  <script src="js/script.js" type="text/javascript">

  </script>

 </head>

 <body onload="CheckLocation();">

  <div class="page_wrap">

   <div class="page_header">

    <div class="content">

     <div class="text bold">
{title}
     </div>

    </div>

   </div>

   <div class="page_body chat_page">

    <div class="history">
"""
TAIL = """
    </div>

   </div>

  </div>

 </body>

</html>
"""


def service(mid: int, text: str) -> str:
    return f"""
     <div class="message service" id="message{mid}">

      <div class="body details">
{text}
      </div>

     </div>
"""


def userpic(initials: str, forwarded: bool = False) -> str:
    cls = "pull_left forwarded userpic_wrap" if forwarded else "pull_left userpic_wrap"
    return f"""
      <div class="{cls}">

       <div class="userpic userpic2" style="width: 42px; height: 42px">

        <div class="initials" style="line-height: 42px">
{initials}
        </div>

       </div>

      </div>
"""


def message(
    mid: int,
    *,
    date: str,
    time: str,
    text: str | None = None,
    from_name: str | None = None,
    joined: bool = False,
    forwarded: str | None = None,
    forwarded_date: str = "",
    reply_to: int | None = None,
    reply_file: str = "",
    media: str = "",
    signature: str | None = None,
    reactions: str = "",
) -> str:
    parts = [
        f'\n     <div class="message default clearfix{" joined" if joined else ""}" id="message{mid}">\n'
    ]
    if not joined:
        parts.append(userpic("КП"))
    parts.append('\n      <div class="body">\n')
    parts.append(f'\n       <div class="pull_right date details" title="{date}">\n{time}\n       </div>\n')
    if from_name is not None:
        parts.append(f'\n       <div class="from_name">\n{from_name}\n       </div>\n')
    indent = "       "
    if forwarded is not None:
        parts.append(userpic("CV", forwarded=True))
        parts.append('\n       <div class="forwarded body">\n')
        if forwarded:
            parts.append(
                f'\n        <div class="from_name">\n{forwarded}<span class="date details" '
                f'title="{forwarded_date}"> {forwarded_date[:19]}</span>\n        </div>\n'
            )
        indent = "        "
    if reply_to is not None:
        parts.append(
            f'\n{indent}<div class="reply_to details">\nIn reply to <a href="{reply_file}#go_to_message{reply_to}" '
            f'onclick="return GoToMessage({reply_to})">this message</a>\n{indent}</div>\n'
        )
    parts.append(media)
    if text is not None:
        parts.append(f'\n{indent}<div class="text">\n{text}\n{indent}</div>\n')
    if signature is not None:
        parts.append(f'\n{indent}<div class="signature details">\n{signature}\n{indent}</div>\n')
    if forwarded is not None:
        parts.append("\n       </div>\n")
    parts.append(reactions)
    parts.append("\n      </div>\n\n     </div>\n")
    return "".join(parts)


def photo(path: str) -> str:
    return f"""
       <div class="media_wrap clearfix">

        <a class="photo_wrap clearfix pull_left" href="{path}">

         <img class="photo" src="{path[:-4]}_thumb.jpg" style="width: 260px; height: 146px"/>

        </a>

       </div>
"""


def file_card(path: str, title: str, status: str) -> str:
    return f"""
       <div class="media_wrap clearfix">

        <a class="media clearfix pull_left block_link media_file" href="{path}">

         <div class="fill pull_left">

         </div>

         <div class="body">

          <div class="title bold">
{title}
          </div>

          <div class="status details">
{status}
          </div>

         </div>

        </a>

       </div>
"""


def reactions(*items: tuple[str, int | None, int]) -> str:
    """(emoji, count or None when only userpics are shown, number of userpics)."""
    out = ['\n       <span class="reactions">\n']
    for emoji, count, pics in items:
        out.append('\n        <span class="reaction">\n')
        out.append(f'\n         <span class="emoji">\n{emoji}\n         </span>\n')
        if pics:
            out.append('\n         <span class="userpics">\n')
            out.extend(
                '\n          <div class="userpic userpic1" style="width: 20px; height: 20px">\n'
                '\n           <div class="initials" style="line-height: 20px" title="A">\nA\n           </div>\n'
                "\n          </div>\n"
                for _ in range(pics)
            )
            out.append("\n         </span>\n")
        if count is not None:
            out.append(f'\n         <span class="count">\n{count}\n         </span>\n')
        out.append("\n        </span>\n")
    out.append("\n       </span>\n")
    return "".join(out)


def write_html_export(path: Path, title: str, body: str) -> Path:
    path.write_text(HEAD.format(title=title) + body + TAIL, encoding="utf-8")
    return path
